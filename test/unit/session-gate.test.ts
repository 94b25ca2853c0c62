import { describe, expect, test } from 'vitest'
import { PLUGIN_CHANGES_CHANNEL } from '../../src/db/change-feed.js'
import { BackendStream } from '../../src/db/gated-query-queue.js'
import { SessionGate } from '../../src/db/session-gate.js'

describe('the session gate', () => {
  test('hands the session over in arrival order, and only when its owner lets go', async () => {
    const gate = new SessionGate()
    const order: string[] = []
    await gate.acquire(1)
    const second = gate.acquire(2).then(() => order.push('client 2'))
    const app = gate.run(async () => void order.push('daemon'))
    await gate.acquire(1) // re-entrant for the owner: a transaction's next statement
    await Promise.resolve()
    expect(order).toEqual([])
    gate.release(2) // not the owner: ignored
    expect(gate.currentOwner).toBe(1)
    gate.release(1)
    await second
    expect(order).toEqual(['client 2'])
    gate.release(2)
    await app
    expect(order).toEqual(['client 2', 'daemon'])
    expect(gate.currentOwner).toBeUndefined()
  })

  test('run releases the gate when the work throws', async () => {
    const gate = new SessionGate()
    await expect(gate.run(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom')
    expect(gate.currentOwner).toBeUndefined()
  })
})

function message(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(5)
  header[0] = type.charCodeAt(0)
  header.writeInt32BE(4 + body.length, 1)
  return Buffer.concat([header, body])
}

function notification(channel: string, payload: string): Buffer {
  const pid = Buffer.alloc(4)
  pid.writeInt32BE(42)
  return message('A', Buffer.concat([pid, Buffer.from(`${channel}\0${payload}\0`)]))
}

const readyIdle = message('Z', Buffer.from('I'))
const readyInTransaction = message('Z', Buffer.from('T'))
const commandComplete = message('C', Buffer.from('UPDATE 1\0'))

describe('the backend stream of an SQL-port client', () => {
  test('takes our notifications out, forwards the rest, across chunk boundaries', () => {
    const payloads: string[] = []
    const forwarded: Buffer[] = []
    const stream = new BackendStream((payload) => payloads.push(payload))
    const bytes = Buffer.concat([commandComplete, notification(PLUGIN_CHANGES_CHANNEL, '{"op":"update"}'), notification('other', 'x'), readyIdle])
    stream.beginMessage()
    // Split into awkward pieces: inside a header, inside a body.
    for (const [start, end] of [[0, 3], [3, 20], [20, 21], [21, bytes.length]] as const) {
      stream.push(bytes.subarray(start, end), (data) => forwarded.push(Buffer.from(data)))
    }
    expect(payloads).toEqual(['{"op":"update"}'])
    expect(Buffer.concat(forwarded)).toEqual(Buffer.concat([commandComplete, notification('other', 'x'), readyIdle]))
    expect(stream.idle).toBe(true)
  })

  test('is idle only after ReadyForQuery outside a transaction', () => {
    const stream = new BackendStream(() => undefined)
    stream.beginMessage()
    stream.push(Buffer.concat([commandComplete, readyInTransaction]), () => undefined)
    expect(stream.idle).toBe(false)
    stream.beginMessage()
    stream.push(commandComplete, () => undefined) // e.g. Execute without Sync yet
    expect(stream.idle).toBe(false)
    stream.beginMessage()
    stream.push(readyIdle, () => undefined)
    expect(stream.idle).toBe(true)
    stream.beginMessage()
    expect(stream.idle).toBe(false)
  })
})
