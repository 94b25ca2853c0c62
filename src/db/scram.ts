// SCRAM-SHA-256 on the server side (RFC 5802 and RFC 7677), as Postgres does it: the SASL
// mechanism psql and node-postgres use against a server whose password_encryption is
// scram-sha-256. The password itself never crosses the wire and is not kept in memory:
// only the verifier (salt, iterations, StoredKey, ServerKey), as in pg_authid.
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto'

export const SCRAM_MECHANISM = 'SCRAM-SHA-256'
/** Postgres' default (scram_iterations). */
export const SCRAM_ITERATIONS = 4096

export interface ScramVerifier {
  salt: Buffer
  iterations: number
  storedKey: Buffer
  serverKey: Buffer
}

/** The verifier of `password`; a fresh random salt unless one is given (tests). */
export function scramVerifier(password: string, salt: Buffer = randomBytes(16), iterations = SCRAM_ITERATIONS): ScramVerifier {
  const saltedPassword = pbkdf2Sync(saslPrepared(password), salt, iterations, 32, 'sha256')
  const clientKey = hmac(saltedPassword, 'Client Key')
  return { salt, iterations, storedKey: sha256(clientKey), serverKey: hmac(saltedPassword, 'Server Key') }
}

export type ScramStep<T extends string> = { ok: true } & Record<T, string> | { ok: false; reason: string }

/**
 * One authentication exchange: the client's first message, then its final one. Any
 * deviation from the RFC ends the exchange as a failure; the reason is for the log only
 * (the client is told "password authentication failed", as Postgres does).
 */
export class ScramExchange {
  private clientFirstBare: string | undefined
  private serverFirst: string | undefined
  private gs2Header: string | undefined
  private nonce: string | undefined

  constructor(
    private readonly verifier: ScramVerifier,
    private readonly serverNonce: string = randomBytes(18).toString('base64'),
  ) {}

  /** client-first-message → server-first-message. */
  first(clientFirst: string): ScramStep<'serverFirst'> {
    // gs2-header: "n,," (no channel binding) or "y,," (the client could bind but we offered no
    // -PLUS mechanism); "p=" asks for channel binding, which needs TLS, which this port has not.
    const match = /^([ny]),(a=[^,]*)?,(n=[^,]*,r=([\x21-\x2b\x2d-\x7e]+)(,.*)?)$/.exec(clientFirst)
    if (!match) return { ok: false, reason: 'malformed client-first-message (or channel binding asked for)' }
    const clientNonce = match[4]!
    if (match[5] !== undefined && /(^|,)m=/.test(match[5])) return { ok: false, reason: 'unsupported mandatory SCRAM extension' }
    this.gs2Header = `${match[1]},${match[2] ?? ''},`
    this.clientFirstBare = match[3]!
    this.nonce = clientNonce + this.serverNonce
    this.serverFirst = `r=${this.nonce},s=${this.verifier.salt.toString('base64')},i=${this.verifier.iterations}`
    return { ok: true, serverFirst: this.serverFirst }
  }

  /** client-final-message → server-final-message, when the proof is right. */
  final(clientFinal: string): ScramStep<'serverFinal'> {
    if (this.serverFirst === undefined || this.clientFirstBare === undefined || this.gs2Header === undefined) {
      return { ok: false, reason: 'client-final-message before client-first-message' }
    }
    const match = /^(c=([^,]*),r=([^,]*)(?:,[^,]*)*?),p=([A-Za-z0-9+/=]+)$/.exec(clientFinal)
    if (!match) return { ok: false, reason: 'malformed client-final-message' }
    const [, withoutProof, channelBinding, nonce, proofText] = match
    if (channelBinding !== Buffer.from(this.gs2Header).toString('base64')) return { ok: false, reason: 'channel binding data does not match' }
    if (nonce !== this.nonce) return { ok: false, reason: 'nonce does not match' }
    const proof = Buffer.from(proofText!, 'base64')
    if (proof.length !== 32) return { ok: false, reason: 'proof of the wrong length' }
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`
    const clientSignature = hmac(this.verifier.storedKey, authMessage)
    const clientKey = Buffer.alloc(32)
    for (let index = 0; index < 32; index++) clientKey[index] = proof[index]! ^ clientSignature[index]!
    if (!timingSafeEqual(sha256(clientKey), this.verifier.storedKey)) return { ok: false, reason: 'wrong password' }
    const serverSignature = hmac(this.verifier.serverKey, authMessage)
    return { ok: true, serverFinal: `v=${serverSignature.toString('base64')}` }
  }
}

/**
 * The client side, for tests and tools of ours that do not use libpq or node-postgres:
 * returns the client-first-message and a function from server-first to client-final.
 */
export function scramClient(password: string, clientNonce: string = randomBytes(18).toString('base64')) {
  const clientFirstBare = `n=,r=${clientNonce}`
  return {
    clientFirst: `n,,${clientFirstBare}`,
    final(serverFirst: string): string {
      const fields = Object.fromEntries(serverFirst.split(',').map((field) => [field[0], field.slice(2)]))
      const salted = pbkdf2Sync(saslPrepared(password), Buffer.from(fields.s ?? '', 'base64'), Number(fields.i), 32, 'sha256')
      const withoutProof = `c=biws,r=${fields.r}`
      const clientKey = hmac(salted, 'Client Key')
      const signature = hmac(sha256(clientKey), `${clientFirstBare},${serverFirst},${withoutProof}`)
      const proof = Buffer.alloc(32)
      for (let index = 0; index < 32; index++) proof[index] = clientKey[index]! ^ signature[index]!
      return `${withoutProof},p=${proof.toString('base64')}`
    },
  }
}

/**
 * libpq runs the password through SASLprep (RFC 4013) before hashing; for the ASCII
 * passwords this daemon generates that changes nothing. NFKC is SASLprep's normalisation,
 * which is what matters for a non-ASCII SQL_PASSWORD typed the same way on both sides.
 */
function saslPrepared(password: string): string {
  // eslint-disable-next-line no-control-regex
  return /^[\x00-\x7f]*$/.test(password) ? password : password.normalize('NFKC')
}

function hmac(key: Buffer, text: string): Buffer {
  return createHmac('sha256', key).update(text, 'utf8').digest()
}

function sha256(bytes: Buffer): Buffer {
  return createHash('sha256').update(bytes).digest()
}
