/**
 * A failure the daemon anticipates and names: a plugin not found, a name or port taken, the
 * database or the Docker engine unreachable, a bad configuration, an API request refused.
 * Its message tells the whole story, so the log shows only its type, message and code. Any
 * other error may be a bug and is logged with its stack and causes (serializeError in
 * src/logger.ts). Typed errors callers are meant to catch and act on extend this class.
 */
export class ExpectedError extends Error {
  override name = 'ExpectedError'
}
