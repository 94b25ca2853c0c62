// What keeps a web page in the operator's browser from driving the API, token or not.
// The API takes no cookies and no ambient credentials (the token is a header a page cannot
// read), so the ways in are requests the browser makes on a page's behalf:
// - a cross-site form or fetch (POST /api/v1/plugins/x/stop): refused by its Origin, or by
//   Sec-Fetch-Site, whichever the browser sends;
// - a cross-site WebSocket (/api/v1/ws): the same check, on the handshake;
// - DNS rebinding (a page's own name made to resolve to 127.0.0.1, so that it is "same
//   origin"): refused by its Host, which is then the attacker's name and no name of ours;
// - a plugin's page under /plugins/NAME/, which has the API's origin: proxied answers carry
//   `Content-Security-Policy: sandbox` (proxy.ts), so their scripts run in an opaque origin,
//   their requests to /api carry `Origin: null` and are refused here, and they can read no
//   API answer and no storage of the API's origin.
// Clients that are not browsers (curl, forgectl) send neither Origin nor Sec-Fetch-Site.
import { isIP } from 'node:net'
import type { MiddlewareHandler } from 'hono'
import { ApiError } from './errors.js'

/** What every answer that is not a plugin's own proxied content carries. */
export const API_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  // JSON and text only: nothing here is to be rendered, run, framed or submitted to.
  'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Resource-Policy': 'same-origin',
}

export interface HostGuardOptions {
  /**
   * Host names the daemon serves besides IP literals, `localhost` (and `*.localhost`) and
   * this machine's name (API_ALLOWED_HOSTS). `.example.com` allows every name below it.
   */
  allowedHosts: readonly string[]
}

/**
 * Refuses a request whose Host names a host this daemon does not serve (DNS rebinding).
 * IP literals pass: a page can only send one as its Host from that very address.
 */
export function hostGuard(options: HostGuardOptions): MiddlewareHandler {
  const allowed = options.allowedHosts.map((name) => name.toLowerCase())
  return async function refuseForeignHost(c, next) {
    const host = c.req.header('host')
    if (host !== undefined && host !== '' && !isServedHost(hostName(host), allowed)) {
      throw new ApiError(
        403,
        'host_not_allowed',
        `the Host "${oneLine(host)}" is not a name this daemon serves (a DNS rebinding page?); add it to API_ALLOWED_HOSTS if it is yours`,
      )
    }
    await next()
  }
}

/**
 * Refuses a request a browser sends on behalf of another site: Sec-Fetch-Site other than
 * same-origin or none, or an Origin (null included) other than the request's own host.
 * Applies to every method under /api: a refused cross-site read costs nothing legitimate
 * (the page could not read the answer anyway) and ties up no stream.
 */
export function originGuard(): MiddlewareHandler {
  return async function refuseOtherOrigins(c, next) {
    const fetchSite = c.req.header('sec-fetch-site')
    if (fetchSite !== undefined && fetchSite !== 'same-origin' && fetchSite !== 'none') {
      throw crossOrigin(`a ${oneLine(fetchSite)} request`)
    }
    const origin = c.req.header('origin')
    if (origin !== undefined && !sameHost(origin, c.req.header('host') ?? new URL(c.req.url).host)) {
      throw crossOrigin(`a request from the origin "${oneLine(origin)}"`)
    }
    await next()
  }
}

/** What a plugin's proxied answer gets unless it says otherwise (its CSP sandbox comes from proxy.ts). */
const PROXIED_DEFAULT_HEADERS = ['X-Content-Type-Options', 'Referrer-Policy'] as const

/**
 * Adds API_SECURITY_HEADERS to every answer. A plugin's proxied answer (it carries the
 * sandbox policy already) keeps its own framing and resource policies: only nosniff and the
 * referrer policy are added where it set none.
 */
export function securityHeaders(): MiddlewareHandler {
  return async function addSecurityHeaders(c, next) {
    await next()
    // A WebSocket upgrade's answer is made by the server, not here.
    if (c.res.status === 101) return
    const proxied = c.res.headers.has('content-security-policy')
    for (const [name, value] of Object.entries(API_SECURITY_HEADERS)) {
      if (proxied && !(PROXIED_DEFAULT_HEADERS as readonly string[]).includes(name)) continue
      if (!c.res.headers.has(name)) c.res.headers.set(name, value)
    }
  }
}

function crossOrigin(what: string): ApiError {
  return new ApiError(403, 'cross_origin', `${what} is refused: the API answers its own origin and clients that are not browsers`)
}

function isServedHost(name: string, allowed: readonly string[]): boolean {
  if (isIP(name) !== 0) return true
  if (name === 'localhost' || name.endsWith('.localhost')) return true
  return allowed.some((entry) => (entry.startsWith('.') ? name.endsWith(entry) || name === entry.slice(1) : name === entry))
}

/** `Host` without its port, lower case, IPv6 brackets removed; a trailing dot dropped. */
export function hostName(host: string): string {
  const trimmed = host.trim().toLowerCase()
  const bracketed = /^\[([^\]]*)\](?::\d*)?$/.exec(trimmed)
  if (bracketed) return bracketed[1]!
  return trimmed.replace(/:\d*$/, '').replace(/\.$/, '')
}

/**
 * Whether a page of `origin` is this host as the request names it. A Host without a port
 * (a reverse proxy in front, plain or TLS) matches its name on the scheme's default port.
 * `null` (a sandboxed page, a file) and anything not http(s) match nothing.
 */
function sameHost(origin: string, host: string): boolean {
  let page: URL
  let served: URL
  try {
    page = new URL(origin)
    served = new URL(`http://${host.trim()}`)
  } catch {
    return false
  }
  if (page.protocol !== 'http:' && page.protocol !== 'https:') return false
  if (page.hostname !== served.hostname) return false
  const pagePort = page.port || (page.protocol === 'https:' ? '443' : '80')
  return served.port === '' ? pagePort === '80' || pagePort === '443' : served.port === pagePort
}

function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f]/g, '?').slice(0, 200)
}
