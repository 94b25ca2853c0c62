import { describe, expect, test } from 'vitest'
import { applyMergePatch } from '../../src/api/merge-patch.js'

describe('applyMergePatch (RFC 7386)', () => {
  // Appendix A of the RFC, case by case: [target, patch, result].
  const appendixA: [unknown, unknown, unknown][] = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [['a', 'b'], ['c', 'd'], ['c', 'd']],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ]

  test.each(appendixA)('merges %j with %j', (target, patch, result) => {
    expect(applyMergePatch(target, patch)).toEqual(result)
  })

  test('changes neither the target nor the patch', () => {
    const target = { spec: { state: 'running', config: { a: 1, b: 2 } } }
    const patch = { spec: { config: { a: null, c: 3 } } }
    const targetBefore = structuredClone(target)
    const patchBefore = structuredClone(patch)
    expect(applyMergePatch(target, patch)).toEqual({ spec: { state: 'running', config: { b: 2, c: 3 } } })
    expect(target).toEqual(targetBefore)
    expect(patch).toEqual(patchBefore)
  })

  test('drops nulls nested inside a new object, which has nothing to remove', () => {
    expect(applyMergePatch({ spec: {} }, { spec: { config: { keep: 1, gone: null } } })).toEqual({ spec: { config: { keep: 1 } } })
  })

  test('keeps a "__proto__" key as data instead of changing the prototype', () => {
    const patch = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as unknown
    const merged = applyMergePatch({}, patch) as Record<string, unknown>
    expect(Object.getPrototypeOf(merged)).toBe(Object.prototype)
    expect((merged as { polluted?: unknown }).polluted).toBeUndefined()
    expect(Object.keys(merged)).toEqual(['__proto__', 'a'])
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined()
  })
})
