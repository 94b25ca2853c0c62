// FORGE_API_TOKEN: `Authorization: Bearer <token>` on /api and /plugins.
import { createHash, timingSafeEqual } from 'node:crypto'
import type { MiddlewareHandler } from 'hono'
import { ApiError } from './errors.js'

export function bearerAuth(apiToken: string): MiddlewareHandler {
  // Both sides are hashed first: timingSafeEqual needs equal lengths, and comparing digests
  // reveals neither the token's bytes nor its length through timing.
  const expectedDigest = digest(apiToken)
  return async function requireBearerToken(c, next) {
    const presented = /^Bearer[ ]+(\S+)[ ]*$/i.exec(c.req.header('authorization') ?? '')?.[1]
    if (presented === undefined || !timingSafeEqual(digest(presented), expectedDigest)) {
      const message = presented === undefined ? 'an Authorization: Bearer <token> header is required' : 'the bearer token is not valid'
      throw new ApiError(401, 'unauthorized', message, [], { 'WWW-Authenticate': 'Bearer realm="flowforge"' })
    }
    await next()
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest()
}
