// Live events across managers on one Postgres server: what one manager records reaches the
// live streams of another (and a psql INSERT reaches both), and nobody publishes its own
// events twice.
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { loadConfig } from '../../src/config.js'
import { openDatabase, type DatabaseHandle } from '../../src/db/database.js'
import { EventBus, type BusEvent } from '../../src/db/event-bus.js'
import { EventRelay } from '../../src/db/event-relay.js'
import { migrate } from '../../src/db/migrator.js'
import { PluginStore } from '../../src/db/plugin-store.js'
import { silentLogger } from '../../src/logger.js'
import { createServerDatabase, eventually, inCi, migrationsDir, postgresUrl } from '../helpers/databases.js'

interface Manager {
  handle: DatabaseHandle
  store: PluginStore
  relay: EventRelay
  seen: BusEvent[]
}

describe.skipIf(!postgresUrl && !inCi)('the event relay between managers (Postgres server)', () => {
  let database: { connectionString: string; drop: () => Promise<void> }
  const managers: Manager[] = []

  async function manager(id: string): Promise<Manager> {
    const config = loadConfig({ DATABASE_URL: database.connectionString, MANAGER_ID: id, DB_CONNECT_DEADLINE: '10s' })
    const handle = await openDatabase(config, silentLogger())
    await migrate(handle.db, migrationsDir, silentLogger())
    const bus = new EventBus()
    const seen: BusEvent[] = []
    bus.subscribe((event) => seen.push(event))
    const store = new PluginStore(handle.db, handle.changes, silentLogger(), bus)
    const relay = new EventRelay(store, bus, silentLogger())
    relay.start()
    const made = { handle, store, relay, seen }
    managers.push(made)
    // LISTEN is armed asynchronously.
    await eventually(() => (handle.changes.connected ? true : undefined), 10_000, `manager ${id} listening`)
    return made
  }

  beforeAll(async () => {
    if (!postgresUrl) throw new Error('CI=true but TEST_DATABASE_URL is not set')
    database = await createServerDatabase()
  })
  afterAll(async () => {
    for (const one of managers) {
      await one.relay.stop()
      await one.handle.close()
    }
    await database?.drop()
  })

  test('an event one manager records reaches the other once; its own streams get it once; a psql INSERT reaches both', async () => {
    const leader = await manager('relay-m1')
    const follower = await manager('relay-m2')
    const plugin = await leader.store.createPlugin({ forgehookId: 'relayed', source: 'api', manifest: { image: 'x:1', port: 8080 } })

    await leader.store.logEvents([{ pluginId: plugin.id, forgehookId: 'relayed', type: 'plugin:started', data: { by: 'leader' } }])
    await eventually(() => (follower.seen.some((event) => event.type === 'plugin:started') ? true : undefined), 5_000, 'the follower sees it')

    const psql = new pg.Client({ connectionString: database.connectionString })
    await psql.connect()
    try {
      await psql.query(`INSERT INTO plugin_events (plugin_id, event_type, data) VALUES ($1, 'operator:note', '{"text":"hello"}')`, [plugin.id])
    } finally {
      await psql.end()
    }
    for (const one of [leader, follower]) {
      await eventually(() => (one.seen.some((event) => event.type === 'operator:note') ? true : undefined), 5_000, 'the psql event')
    }
    // Give any duplicate time to arrive before counting.
    await new Promise((resolve) => setTimeout(resolve, 200))
    const count = (one: Manager, type: string) => one.seen.filter((event) => event.type === type).length
    expect([count(leader, 'plugin:started'), count(follower, 'plugin:started')]).toEqual([1, 1])
    expect([count(leader, 'operator:note'), count(follower, 'operator:note')]).toEqual([1, 1])
    expect(follower.seen.find((event) => event.type === 'operator:note')).toMatchObject({ forgehookId: 'relayed', data: { text: 'hello' } })
  })

  test('a restart request one manager sends reaches the listeners of every manager', async () => {
    const [sender, receiver] = managers.length >= 2 ? managers : [await manager('relay-m3'), await manager('relay-m4')]
    const heard: { manager: string; pluginId: string; reason: string }[] = []
    const stops = [sender!, receiver!].map((one, index) =>
      one.store.subscribe({ onChange: () => undefined, onResync: () => undefined, onRestartRequest: (pluginId, reason) => void heard.push({ manager: `m${index}`, pluginId, reason }) }),
    )
    try {
      await sender!.store.sendRestartRequest('0b7e5b9e-2f43-4c36-9a53-2b8f3d1f6a10', 'requested through the API (via manager m2)')
      await eventually(() => (heard.length === 2 ? true : undefined), 5_000, 'both managers hear it')
      expect(heard.map((one) => one.reason)).toEqual(['requested through the API (via manager m2)', 'requested through the API (via manager m2)'])
      expect(new Set(heard.map((one) => one.pluginId))).toEqual(new Set(['0b7e5b9e-2f43-4c36-9a53-2b8f3d1f6a10']))
    } finally {
      for (const stop of stops) stop()
    }
  })
})
