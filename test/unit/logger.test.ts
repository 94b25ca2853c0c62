// What an operator reads in the log about an error: a named, expected failure in one line;
// anything else (a likely bug) with its stack and causes. API answers never carry either.
import { expect, test } from 'vitest'
import { ApiError, toErrorResponse } from '../../src/api/errors.js'
import { DatabaseUnavailableError } from '../../src/db/errors.js'
import { PortInUseError } from '../../src/runtime/container-runtime.js'
import { captureLogs } from '../helpers/log-capture.js'

function loggedError(error: unknown): Record<string, unknown> {
  const logs = captureLogs()
  logs.logger.error({ err: error }, 'something failed')
  return logs.lines[0]?.err as Record<string, unknown>
}

test('an unexpected error is logged with its stack and the message and stack of each cause', () => {
  const socketError = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })
  const cause = new RangeError('offset 7 is out of range', { cause: socketError })
  const logged = loggedError(new TypeError("Cannot read properties of undefined (reading 'id')", { cause }))

  expect(logged).toEqual({
    type: 'TypeError',
    message: "Cannot read properties of undefined (reading 'id')",
    stack: expect.stringMatching(/^TypeError: Cannot read properties of undefined \(reading 'id'\)\n\s+at .*logger\.test\.ts/),
    cause: {
      type: 'RangeError',
      message: 'offset 7 is out of range',
      stack: expect.stringMatching(/^RangeError: offset 7 is out of range\n\s+at /),
      cause: { type: 'Error', message: 'read ECONNRESET', code: 'ECONNRESET', stack: expect.stringContaining('read ECONNRESET') },
    },
  })
})

test('an expected, typed error is logged by type, message and code only, even with a cause', () => {
  const portTaken = new PortInUseError(4100, 'bind: address already in use')
  expect(loggedError(portTaken)).toEqual({ type: 'PortInUseError', message: 'host port 4100 is already in use (bind: address already in use)' })
  const unreachable = new DatabaseUnavailableError('cannot connect to Postgres at postgresql://ff:***@db:5432/ff: connection refused', { cause: new Error('connect ECONNREFUSED') })
  expect(loggedError(unreachable)).toEqual({ type: 'DatabaseUnavailableError', message: unreachable.message })
  expect(loggedError(new ApiError(404, 'not_found', 'plugin echo not found'))).toEqual({ type: 'ApiError', message: 'plugin echo not found', code: 'not_found' })
})

test('a chain of causes is cut after a few levels, so a cycle cannot hang the logger', () => {
  const first = new Error('first')
  const second = new Error('second', { cause: first })
  first.cause = second
  let logged: Record<string, unknown> | undefined = loggedError(first)
  let depth = 0
  while (logged?.cause !== undefined) {
    logged = logged.cause as Record<string, unknown>
    depth += 1
  }
  expect(depth).toBe(5)
  expect(logged).toEqual({ type: 'Error', message: depth % 2 === 0 ? 'first' : 'second' })
})

test('the API answers an unexpected error with a 500 that carries no stack, cause or message of it', () => {
  const answer = toErrorResponse(new TypeError('x is not a function', { cause: new Error('deeper') }))
  expect(answer.status).toBe(500)
  expect(answer.body).toEqual({ error: { code: 'internal_error', message: 'internal error', details: [] } })
  expect(JSON.stringify(answer.body)).not.toMatch(/stack|deeper|not a function|\bat /)
})
