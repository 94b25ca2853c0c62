// The guide's "Monitoring & Debugging" SQL must work verbatim against our schema, and
// `pg_dump -t plugins` must dump it (real server only: pg_dump refuses a newer server such
// as PGlite's PostgreSQL 18).
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { engines, openTestDatabase, sampleManifest, type TestDatabase } from '../helpers/databases.js'

const execFileAsync = promisify(execFile)

// Copied as written in DATABASE_PERSISTENCE_GUIDE.md, "Monitoring & Debugging".
const GUIDE_QUERIES = {
  viewAllPlugins: `
SELECT
  forgehook_id,
  manifest->>'name' as name,
  status,
  health_status,
  installed_at,
  started_at
FROM plugins
ORDER BY installed_at DESC;`,
  last20Events: `
SELECT
  p.forgehook_id,
  e.event_type,
  e.timestamp,
  e.data
FROM plugin_events e
JOIN plugins p ON e.plugin_id = p.id
ORDER BY e.timestamp DESC
LIMIT 20;`,
  usedPorts: `
SELECT forgehook_id, host_port
FROM plugins
ORDER BY host_port;`,
  unhealthyPlugins: `
SELECT forgehook_id, status, health_status, error
FROM plugins
WHERE health_status = 'unhealthy' OR status = 'error';`,
  pluginsInError: `SELECT * FROM plugins WHERE status = 'error';`,
}

describe.each(engines)('the guide\'s SQL on %s Postgres', (engine) => {
  let database: TestDatabase

  beforeAll(async () => {
    database = await openTestDatabase(engine)
    const { store } = database
    const crypto = await store.createPlugin({ forgehookId: 'crypto-service', source: 'api', manifest: sampleManifest('crypto', { name: 'Crypto Service' }) })
    const pdf = await store.createPlugin({ forgehookId: 'pdf-service', source: 'api', manifest: sampleManifest('pdf', { name: 'PDF Service' }) })
    await store.writeStatus(crypto.id, { status: 'running', healthStatus: 'healthy', hostPort: 4101, installedAt: new Date(), startedAt: new Date() })
    await store.writeStatus(pdf.id, { status: 'error', healthStatus: 'unhealthy', hostPort: 4100, error: 'exited with code 1', installedAt: new Date() })
    await store.logEvent({ pluginId: crypto.id, forgehookId: 'crypto-service', type: 'plugin:started', data: { hostPort: 4101 } })
    await store.logEvent({ pluginId: pdf.id, forgehookId: 'pdf-service', type: 'plugin:crashed', data: { exitCode: 1 } })
  })
  afterAll(async () => database?.close())

  async function run(text: string): Promise<Record<string, unknown>[]> {
    return (await sql.raw<Record<string, unknown>>(text).execute(database.handle.db)).rows
  }

  test('"view all plugins" lists names from the manifest', async () => {
    const rows = await run(GUIDE_QUERIES.viewAllPlugins)
    expect(rows.map((row) => row.name).sort()).toEqual(['Crypto Service', 'PDF Service'])
    expect(Object.keys(rows[0]!)).toEqual(['forgehook_id', 'name', 'status', 'health_status', 'installed_at', 'started_at'])
  })

  test('"last 20 events" joins events to their plugins', async () => {
    const rows = await run(GUIDE_QUERIES.last20Events)
    expect(rows.map((row) => [row.forgehook_id, row.event_type])).toEqual([
      ['pdf-service', 'plugin:crashed'],
      ['crypto-service', 'plugin:started'],
    ])
  })

  test('"check used ports" orders plugins by port', async () => {
    const rows = await run(GUIDE_QUERIES.usedPorts)
    expect(rows).toEqual([
      { forgehook_id: 'pdf-service', host_port: 4100 },
      { forgehook_id: 'crypto-service', host_port: 4101 },
    ])
  })

  test('"find unhealthy plugins" finds the failing one', async () => {
    const rows = await run(GUIDE_QUERIES.unhealthyPlugins)
    expect(rows).toEqual([{ forgehook_id: 'pdf-service', status: 'error', health_status: 'unhealthy', error: 'exited with code 1' }])
    expect((await run(GUIDE_QUERIES.pluginsInError)).map((row) => row.forgehook_id)).toEqual(['pdf-service'])
  })

  if (engine === 'postgres') {
    test('pg_dump -t plugins dumps the table with its rows', async () => {
      const { stdout } = await execFileAsync('pg_dump', ['-d', database.connectionString!, '-t', 'plugins'])
      expect(stdout).toContain('CREATE TABLE public.plugins')
      expect(stdout).toContain('crypto-service')
      expect(stdout).toContain('CREATE TRIGGER plugins_notify_change')
    })
  }
})
