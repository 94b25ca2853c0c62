// Typed store errors. The API maps them to status codes in one place (404, 409, 503, ...).

export class NotFoundError extends Error {
  override name = 'NotFoundError'
  constructor(readonly what: string) {
    super(`${what} not found`)
  }
}

export class AlreadyExistsError extends Error {
  override name = 'AlreadyExistsError'
  constructor(readonly what: string) {
    super(`${what} already exists`)
  }
}

/** An update carried a resourceVersion that is no longer current (optimistic concurrency). */
export class ConflictError extends Error {
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
export class InvalidValueError extends Error {
  override name = 'InvalidValueError'
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message)
  }
}

/** The database cannot be reached (start-up deadline passed, connection lost). */
export class DatabaseUnavailableError extends Error {
  override name = 'DatabaseUnavailableError'
}

/** A data dir is already open in another process. */
export class DataDirLockedError extends Error {
  override name = 'DataDirLockedError'
}

export class MigrationError extends Error {
  override name = 'MigrationError'
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(message)
  }
}
