// Typed store errors. The API maps them to status codes in one place (404, 409, 503, ...).
import { ExpectedError } from '../util/expected-error.js'

export class NotFoundError extends ExpectedError {
  override name = 'NotFoundError'
  constructor(readonly what: string) {
    super(`${what} not found`)
  }
}

export class AlreadyExistsError extends ExpectedError {
  override name = 'AlreadyExistsError'
  constructor(readonly what: string) {
    super(`${what} already exists`)
  }
}

/** An update carried a resourceVersion that is no longer current (optimistic concurrency). */
export class ConflictError extends ExpectedError {
  override name = 'ConflictError'
  constructor(
    readonly what: string,
    readonly expectedResourceVersion: number,
    readonly currentResourceVersion: number,
  ) {
    super(
      `${what} was changed by someone else: expected resourceVersion ${expectedResourceVersion}, ` +
        `current is ${currentResourceVersion}; re-read it and try again`,
    )
  }
}

/** A value the database refused (a check constraint, a duplicate port, ...). */
export class InvalidValueError extends ExpectedError {
  override name = 'InvalidValueError'
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message)
  }
}

/** The database cannot be reached (start-up deadline passed, connection lost). */
export class DatabaseUnavailableError extends ExpectedError {
  override name = 'DatabaseUnavailableError'
}

/** A data dir is already open in another process. */
export class DataDirLockedError extends ExpectedError {
  override name = 'DataDirLockedError'
}

export class MigrationError extends ExpectedError {
  override name = 'MigrationError'
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(message)
  }
}
