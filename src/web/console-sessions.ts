// The console's sessions: an HttpOnly, SameSite=Strict cookie, and the CSRF token that goes
// with it. Nothing is stored per session: the cookie is `v1.<expires>.<nonce>.<mac>`, an HMAC
// under a key derived from FORGE_API_TOKEN, so sessions survive a daemon restart and hold on
// every manager of one installation, and changing the token ends every session. Without a
// token the key is random per process (the console then needs no login; a restart only means
// a new cookie at the next page). The CSRF token is another HMAC of the session's nonce: a
// page of this origin reads it from the page it was served, another site can neither read it
// nor make it (synchroniser token, OWASP). Logout remembers the nonce until its expiry.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

export const SESSION_COOKIE = 'flowforge_session'
/** The pre-login cookie that ties the login form's CSRF token to this browser. */
export const LOGIN_COOKIE = 'flowforge_login'
export const CSRF_HEADER = 'x-csrf-token'
export const CSRF_FIELD = 'csrf'
/** A session lasts this long from login (or, without a token, from its first page). */
export const SESSION_TTL_SECONDS = 12 * 3600
export const LOGIN_TTL_SECONDS = 600
/** Logged-out sessions remembered at once; the oldest are forgotten first beyond it. */
const MAX_REVOKED = 10_000

export interface ConsoleSession {
  nonce: string
  expiresAt: number
  /** The token every state-changing request of this session carries (X-CSRF-Token or the form field csrf). */
  csrfToken: string
}

export interface ConsoleSessionsOptions {
  /** FORGE_API_TOKEN: the login secret, and the root of the signing key. Undefined: no login, a random key. */
  apiToken?: string
  now?: () => number
}

export class ConsoleSessions {
  private readonly key: Buffer
  private readonly expectedTokenDigest: Buffer | undefined
  private readonly revoked = new Map<string, number>()
  private readonly now: () => number

  constructor(options: ConsoleSessionsOptions) {
    const secret = options.apiToken ?? randomBytes(32).toString('hex')
    this.key = createHmac('sha256', secret).update('flowforge console sessions v1').digest()
    this.expectedTokenDigest = options.apiToken === undefined ? undefined : digest(options.apiToken)
    this.now = options.now ?? Date.now
  }

  /** Whether a login is needed at all (FORGE_API_TOKEN is set). */
  get loginRequired(): boolean {
    return this.expectedTokenDigest !== undefined
  }

  /** Compares a presented token with FORGE_API_TOKEN in constant time (digests, as bearer-auth does). */
  tokenMatches(presented: string): boolean {
    if (this.expectedTokenDigest === undefined) return false
    return timingSafeEqual(digest(presented), this.expectedTokenDigest)
  }

  /** A new session and the cookie value that carries it. */
  issue(): { session: ConsoleSession; cookieValue: string } {
    const nonce = randomBytes(18).toString('base64url')
    const expiresAt = Math.floor(this.now() / 1000) + SESSION_TTL_SECONDS
    const payload = `v1.${expiresAt}.${nonce}`
    return { session: this.sessionOf(nonce, expiresAt), cookieValue: `${payload}.${this.mac(payload)}` }
  }

  /** The session a cookie value carries: undefined when forged, expired or logged out. */
  verify(cookieValue: string | undefined): ConsoleSession | undefined {
    if (cookieValue === undefined) return undefined
    const match = /^v1\.(\d{1,12})\.([A-Za-z0-9_-]{24})\.([A-Za-z0-9_-]{43})$/.exec(cookieValue)
    if (!match) return undefined
    const [, expires, nonce, mac] = match as unknown as [string, string, string, string]
    if (!equalText(mac, this.mac(`v1.${expires}.${nonce}`))) return undefined
    const expiresAt = Number(expires)
    if (expiresAt * 1000 <= this.now() || this.revoked.has(nonce)) return undefined
    return this.sessionOf(nonce, expiresAt)
  }

  /** Whether `presented` is the CSRF token of `session`. */
  csrfValid(session: ConsoleSession, presented: string | undefined): boolean {
    return presented !== undefined && equalText(presented, session.csrfToken)
  }

  /** Ends a session (logout): its cookie is refused from now on, here. */
  revoke(session: ConsoleSession): void {
    const nowSeconds = this.now() / 1000
    for (const [nonce, expiresAt] of this.revoked) if (expiresAt <= nowSeconds) this.revoked.delete(nonce)
    this.revoked.set(session.nonce, session.expiresAt)
    for (const oldest of this.revoked.keys()) {
      if (this.revoked.size <= MAX_REVOKED) break
      this.revoked.delete(oldest)
    }
  }

  /** The login form's nonce (its cookie) and the CSRF token the form carries. */
  issueLogin(): { nonce: string; csrfToken: string } {
    const nonce = randomBytes(18).toString('base64url')
    return { nonce, csrfToken: this.mac(`login.${nonce}`) }
  }

  loginCsrfValid(nonce: string | undefined, presented: string | undefined): boolean {
    if (nonce === undefined || presented === undefined || !/^[A-Za-z0-9_-]{24}$/.test(nonce)) return false
    return equalText(presented, this.mac(`login.${nonce}`))
  }

  private sessionOf(nonce: string, expiresAt: number): ConsoleSession {
    return { nonce, expiresAt, csrfToken: this.mac(`csrf.${nonce}`) }
  }

  private mac(text: string): string {
    return createHmac('sha256', this.key).update(text).digest('base64url')
  }
}

function digest(value: string): Buffer {
  return createHmac('sha256', 'flowforge token digest').update(value, 'utf8').digest()
}

function equalText(a: string, b: string): boolean {
  const left = Buffer.from(a)
  const right = Buffer.from(b)
  return left.length === right.length && timingSafeEqual(left, right)
}
