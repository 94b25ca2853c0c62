// Two managers on one Postgres database with the real Docker engine: the follower's API
// reads what the leader made. Only the leader's controller connects the runtime, so the
// follower's log reads connect it themselves (before, they failed with a 500).
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { loadConfig } from '../../src/config.js'
import { silentLogger } from '../../src/logger.js'
import { startDaemon, type Daemon } from '../../src/main.js'
import { createServerDatabase, eventually, inCi, postgresUrl } from '../helpers/databases.js'
import { buildTestImages, probeEngine, removeContainers, requireEngineInCi } from '../helpers/docker.js'

const engine = await probeEngine()
requireEngineInCi(engine)
const INSTANCE = 'follower-api'

describe.skipIf(!engine.reachable || (!postgresUrl && !inCi))('a follower\'s API on the real engine', () => {
  let database: Awaited<ReturnType<typeof createServerDatabase>> | undefined
  const managers: Daemon[] = []

  async function start(managerId: string): Promise<Daemon> {
    const config = loadConfig({ PORT: '0', SPECS_DIR: '/nonexistent-follower-specs', MANAGER_INSTANCE: INSTANCE, MANAGER_ID: managerId, HOST_PORT_RANGE: '4560-4579', STOP_TIMEOUT: '2' })
    const daemon = await startDaemon({ ...config, database: { kind: 'postgres', connectionString: database!.connectionString } }, silentLogger())
    managers.push(daemon)
    await daemon.ready
    return daemon
  }

  beforeAll(async () => {
    await buildTestImages()
    await removeContainers('forgehook-fa-')
    database = await createServerDatabase()
  }, 120_000)

  afterAll(async () => {
    for (const manager of managers) await manager.stop()
    await removeContainers('forgehook-fa-')
    await database?.drop()
  })

  test('the follower answers a plugin\'s logs, tail and follow, for the container the leader runs', async () => {
    const leader = await start('m1')
    const follower = await start('m2')
    expect(leader.leadership().role).toBe('leader')
    expect(follower.leadership().role).toBe('follower')
    const api = `http://${follower.apiAddress.host}:${follower.apiAddress.port}/api/v1/plugins`
    // A plugin that writes a line at start, then serves.
    const manifest = { name: 'Talker', image: 'flowforge-test/http:1', imagePullPolicy: 'Never', port: 8080, command: ['/bin/sh', '-c', 'echo "talker is up"; exec sleep 600'] }
    const put = await fetch(`${api}/fa-talker`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ apiVersion: 'flowforge.io/v1', kind: 'Plugin', metadata: { name: 'fa-talker' }, spec: { manifest } }),
    })
    expect(put.status, await put.clone().text()).toBe(201)
    await eventually(async () => ((await follower.store.getPlugin('fa-talker'))?.status === 'running' ? true : undefined), 60_000, 'fa-talker running')

    const tail = await eventually(async () => {
      const answer = await fetch(`${api}/fa-talker/logs?tail=10`)
      expect(answer.status, 'the follower\'s logs answer').toBe(200)
      const text = await answer.text()
      return text.includes('talker is up') ? text : undefined
    }, 10_000, 'the line in the logs')
    expect(tail).toContain('talker is up')

    const following = new AbortController()
    try {
      const stream = await fetch(`${api}/fa-talker/logs?follow=true&tail=10`, { signal: following.signal })
      expect(stream.status).toBe(200)
      const reader = stream.body!.getReader()
      let text = ''
      while (!text.includes('talker is up')) {
        const { value, done } = await reader.read()
        if (done) break
        text += new TextDecoder().decode(value)
      }
      expect(text).toContain('talker is up')
    } finally {
      following.abort()
    }
  })
})
