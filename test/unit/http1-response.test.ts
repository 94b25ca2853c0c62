// The framing of one HTTP/1.1 response read off a raw socket: where the body ends, and
// whether the connection may carry the next request.
import { describe, expect, test } from 'vitest'
import { Http1ResponseReader, type Http1Response } from '../../src/util/http1-response.js'

/** Feeds the text to a new reader in pieces of `step` bytes; the response once complete. */
function read(text: string, step = text.length): { response: Http1Response | undefined; reader: Http1ResponseReader } {
  const reader = new Http1ResponseReader()
  const bytes = Buffer.from(text, 'latin1')
  let response: Http1Response | undefined
  for (let at = 0; at < bytes.length && !response; at += step) response = reader.push(bytes.subarray(at, at + step))
  return { response, reader }
}

describe('HTTP/1.1 responses off a raw socket', () => {
  test('a body with Content-Length ends at its length, whatever the pieces it arrives in', () => {
    const text = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"a":12345}'
    for (const step of [1, 2, 7, text.length]) {
      const { response } = read(text, step)
      expect(response?.statusCode).toBe(200)
      expect(response?.body.toString()).toBe('{"a":12345}')
      expect(response?.reusable).toBe(true)
    }
  })

  test('a chunked body is joined from its chunks, with extensions and trailers', () => {
    const text = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n'
    for (const step of [1, 3, text.length]) {
      const { response } = read(text, step)
      expect(response?.body.toString()).toBe('hello, world')
      expect(response?.reusable).toBe(true)
    }
    expect(read('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n').response?.body.toString()).toBe('abc')
  })

  test('nothing is returned until the whole body is in', () => {
    expect(read('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc').response).toBeUndefined()
    expect(read('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n').response).toBeUndefined()
    expect(read('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n').response).toBeUndefined()
  })

  test('the status code is known once the head is in, before the body', () => {
    const { response, reader } = read('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 100\r\n\r\nnot yet')
    expect(response).toBeUndefined()
    expect(reader.statusCode).toBe(503)
  })

  test('Connection: close, HTTP/1.0 and a body ended by the connection are never reused', () => {
    expect(read('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok').response?.reusable).toBe(false)
    expect(read('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok').response?.reusable).toBe(false)
    expect(read('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok').response?.reusable).toBe(true)
    const { response, reader } = read('HTTP/1.1 200 OK\r\n\r\nuntil the end')
    expect(response).toBeUndefined()
    expect(reader.end()).toMatchObject({ statusCode: 200, reusable: false })
    expect(reader.end().body.toString()).toBe('until the end')
  })

  test('204 and an empty Content-Length have no body; bytes past a body spoil the connection', () => {
    expect(read('HTTP/1.1 204 No Content\r\n\r\n').response).toMatchObject({ statusCode: 204, reusable: true })
    expect(read('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n').response?.body.length).toBe(0)
    expect(read('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA').response).toMatchObject({ reusable: false })
  })

  test('interim 100 Continue answers are skipped', () => {
    const { response } = read('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n', 5)
    expect(response?.statusCode).toBe(201)
  })

  test('a connection closed before the answer is whole is an error; so is an answer that is not HTTP', () => {
    expect(() => read('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab').reader.end()).toThrow(/closed before/)
    expect(() => new Http1ResponseReader().end()).toThrow(/closed before/)
    expect(() => read('SSH-2.0-OpenSSH_9.2\r\n')).toThrow(/not an HTTP\/1.x response/)
    expect(() => read('HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n')).toThrow(/Content-Length/)
    expect(() => read('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n')).toThrow(/chunk size/)
    expect(() => new Http1ResponseReader(10).push(Buffer.from('HTTP/1.1 200 OK\r\n'))).toThrow(/larger than 10 bytes/)
  })
})
