import { expect, test } from 'vitest'
import { formatDuration } from '../../src/util/format-duration.js'

test('writes durations as a person reads them, rounded to a tenth, in seconds up to two minutes', () => {
  expect(formatDuration(250)).toBe('250 ms')
  expect(formatDuration(1_500)).toBe('1.5 s')
  expect(formatDuration(2_500)).toBe('2.5 s')
  expect(formatDuration(90_000)).toBe('90 s')
  expect(formatDuration(120_000)).toBe('2 min')
  expect(formatDuration(300_000)).toBe('5 min')
})
