// The proxy with several addresses for one plugin (ApiDependencies.upstreams: on RUNTIME=swarm
// its running tasks' nodes): requests go round them in turn, a request without a body moves on
// when an address refuses the connection, one with a body does not (it cannot be sent twice).
import { createServer, type Server } from 'node:http'
import { createServer as createNetServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import type { Upstream } from '../../src/api/deps.js'
import { openTestDatabase, type TestDatabase } from '../helpers/databases.js'
import { apiHarness, send } from './api-harness.js'

let database: TestDatabase
let server: Server
let serverPort: number
/** A port nothing listens on: taken, then released. */
let refusingPort: number
const seen: string[] = []

beforeAll(async () => {
  database = await openTestDatabase('embedded')
  server = createServer((request, response) => {
    seen.push(`${request.method} ${request.url}`)
    request.resume()
    request.on('end', () => response.end('from the task'))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  serverPort = (server.address() as AddressInfo).port
  const probe = createNetServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  refusingPort = (probe.address() as AddressInfo).port
  await new Promise((resolve) => probe.close(resolve))
})
afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve))
  await database?.close()
})
beforeEach(async () => {
  await database.reset()
  seen.length = 0
})

async function runningPlugin(name: string): Promise<void> {
  const plugin = await database.store.createPlugin({ forgehookId: name, source: 'api', manifest: { name, image: 'flowforge-test/http:1', port: 8080 } })
  await database.store.writeStatus(plugin.id, { status: 'running', hostPort: 4100 })
}

describe('the proxy over several addresses of one plugin', () => {
  test('a request without a body moves on from an address that refuses; every GET is answered', async () => {
    await runningPlugin('spread')
    const upstreams = async (): Promise<Upstream[]> => [
      { host: '127.0.0.1', port: refusingPort },
      { host: '127.0.0.1', port: serverPort },
    ]
    const { app } = apiHarness(database, { upstreams })
    for (let i = 0; i < 4; i++) {
      const answer = await send(app, 'GET', `/plugins/spread/health?i=${i}`)
      expect(answer.status).toBe(200)
      expect(await answer.text()).toBe('from the task')
    }
    expect(seen).toEqual(['GET /health?i=0', 'GET /health?i=1', 'GET /health?i=2', 'GET /health?i=3'])
  })

  test('a request with a body is not sent twice: to the refusing address it is a 502, to the other one it is answered', async () => {
    await runningPlugin('bodied')
    const upstreams = async (): Promise<Upstream[]> => [
      { host: '127.0.0.1', port: refusingPort },
      { host: '127.0.0.1', port: serverPort },
    ]
    const { app } = apiHarness(database, { upstreams })
    // Two in a row start at the two addresses in turn.
    const statuses = []
    for (let i = 0; i < 2; i++) statuses.push((await send(app, 'POST', '/plugins/bodied/items', { rawBody: '{"a":1}', contentType: 'application/json' })).status)
    expect(statuses.sort()).toEqual([200, 502])
    expect(seen).toEqual(['POST /items'])
  })

  test('no task on a reachable node: 503 with Retry-After', async () => {
    await runningPlugin('nowhere')
    const { app } = apiHarness(database, { upstreams: async () => [] })
    const answer = await send(app, 'GET', '/plugins/nowhere/health')
    expect(answer.status).toBe(503)
    expect(answer.headers.get('retry-after')).toBe('5')
    expect(await answer.text()).toContain('no task running on a reachable node')
  })
})
