// Who sees the console. With FORGE_API_TOKEN set, a page needs a session (the login page
// makes one from the token) or the bearer token itself (scripts, the benchmark); a page asked
// without either is answered with the login page's address, a fragment or check with 401.
// Without a token the console, like the API, listens on loopback only and every browser gets a
// session at its first page, for the CSRF token. Every request that is not a read carries
// that token (X-CSRF-Token, or the form field csrf) and passes the Origin checks of
// api/browser-guard.ts.
import type { Context, MiddlewareHandler } from 'hono'
import { getCookie, setCookie } from 'hono/cookie'
import type { BrowserSessionCheck } from '../api/api-authentication.js'
import { ApiError } from '../api/errors.js'
import { CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, SESSION_TTL_SECONDS, type ConsoleSession, type ConsoleSessions } from './console-sessions.js'

export type ConsoleEnv = { Variables: { session: ConsoleSession } }

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/** The check /api makes of a request's cookie (app.ts takes it through ApiDependencies.console). */
export function sessionCheck(sessions: ConsoleSessions): BrowserSessionCheck {
  return {
    check(c) {
      const session = sessions.verify(getCookie(c, SESSION_COOKIE))
      return session === undefined ? undefined : { csrfValid: sessions.csrfValid(session, c.req.header(CSRF_HEADER)) }
    },
  }
}

export function setSessionCookie(c: Context, cookieValue: string): void {
  setCookie(c, SESSION_COOKIE, cookieValue, {
    httpOnly: true,
    sameSite: 'Strict',
    path: '/',
    maxAge: SESSION_TTL_SECONDS,
    // Only over TLS (behind a reverse proxy that terminates it, the proxy should add it).
    secure: new URL(c.req.url).protocol === 'https:',
  })
}

export function requireConsoleSession(sessions: ConsoleSessions): MiddlewareHandler<ConsoleEnv> {
  return async function requireSession(c, next) {
    let session = sessions.verify(getCookie(c, SESSION_COOKIE))
    if (session === undefined) session = fromBearer(c, sessions)
    if (session === undefined && !sessions.loginRequired) {
      const issued = sessions.issue()
      setSessionCookie(c, issued.cookieValue)
      session = issued.session
    }
    if (session === undefined) return refuse(c)
    if (!SAFE_METHODS.has(c.req.method) && !(await csrfPresented(c, sessions, session))) {
      throw new ApiError(403, 'csrf_token_invalid', 'this console request carries no valid CSRF token: reload the page and try again')
    }
    c.set('session', session)
    await next()
  }
}

/** A script that brings the token (a benchmark, curl) needs no cookie; it gets a session for this request only. */
function fromBearer(c: Context, sessions: ConsoleSessions): ConsoleSession | undefined {
  const presented = /^Bearer[ ]+(\S+)[ ]*$/i.exec(c.req.header('authorization') ?? '')?.[1]
  if (presented === undefined || !sessions.tokenMatches(presented)) return undefined
  return sessions.issue().session
}

async function csrfPresented(c: Context, sessions: ConsoleSessions, session: ConsoleSession): Promise<boolean> {
  const header = c.req.header(CSRF_HEADER)
  if (header !== undefined) return sessions.csrfValid(session, header)
  const mediaType = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase()
  if (mediaType !== 'application/x-www-form-urlencoded' && mediaType !== 'multipart/form-data') return false
  const form = await c.req.parseBody()
  const field = form[CSRF_FIELD]
  return typeof field === 'string' && sessions.csrfValid(session, field)
}

function refuse(c: Context): Response {
  const wantsPage = c.req.method === 'GET' && (c.req.header('accept') ?? '').includes('text/html') && !c.req.path.startsWith('/console/')
  if (wantsPage) {
    const next = c.req.path + (new URL(c.req.url).search || '')
    return c.redirect(`/login?next=${encodeURIComponent(next)}`, 303)
  }
  throw new ApiError(401, 'unauthorized', 'log in to the console first (or send Authorization: Bearer <token>)')
}
