// Both engines return BIGINT (int8) and NUMERIC as strings by default. Our BIGINT columns
// (generation, resource_version, ids, counters) stay far below 2^53 and NUMERIC holds
// metrics, so both are parsed to numbers, identically on pg and PGlite.
export const INT8_OID = 20
export const NUMERIC_OID = 1700

export function parseNumber(value: string): number {
  return Number(value)
}

export const numericParsers: Record<number, (value: string) => number> = {
  [INT8_OID]: parseNumber,
  [NUMERIC_OID]: parseNumber,
}
