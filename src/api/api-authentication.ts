// Who may call /api: a client with `Authorization: Bearer <FORGE_API_TOKEN>` (bearer-auth.ts),
// or a browser carrying a session of the web console (src/web, mounted through
// ApiDependencies.console): its HttpOnly SameSite=Strict cookie, and on every request that
// changes anything its CSRF token in X-CSRF-Token. A foreign page can neither send that cookie
// (SameSite=Strict) nor read the token; the Origin checks of browser-guard.ts run before this
// all the same. The cookie is accepted on /api only, never on a plugin's proxied /plugins/*.
import type { Context, MiddlewareHandler } from 'hono'
import { bearerAuth } from './bearer-auth.js'
import { ApiError } from './errors.js'

/** What the API asks of the console's sessions (web/console-sessions.ts implements it). */
export interface BrowserSessionCheck {
  /** The request's console session, when its cookie carries a valid one; with whether its CSRF token is right. */
  check(c: Context): { csrfValid: boolean } | undefined
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

export interface ApiAuthenticationOptions {
  /** FORGE_API_TOKEN; undefined: no authentication (the API is then on loopback only). */
  apiToken?: string
  /** The console's sessions; undefined: cookies mean nothing to the API. */
  sessions?: BrowserSessionCheck
}

export function apiAuthentication(options: ApiAuthenticationOptions): MiddlewareHandler {
  const bearer = options.apiToken === undefined ? undefined : bearerAuth(options.apiToken)
  return async function authenticateApiRequest(c, next) {
    // A request that brings a token is judged by its token alone.
    const session = c.req.header('authorization') === undefined ? options.sessions?.check(c) : undefined
    if (session !== undefined) {
      // With or without FORGE_API_TOKEN: a browser's write carries its CSRF token.
      if (!SAFE_METHODS.has(c.req.method) && !session.csrfValid) {
        throw new ApiError(403, 'csrf_token_invalid', 'this console request carries no valid CSRF token (X-CSRF-Token): reload the page and try again')
      }
      return next()
    }
    if (bearer !== undefined) return bearer(c, next)
    return next()
  }
}
