// The whole daemon, as an operator uses it: a spec file dropped in the folder, the HTTP API
// over a real socket, the real Docker engine.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { loadConfig } from '../../src/config.js'
import { silentLogger } from '../../src/logger.js'
import { startDaemon, type Daemon } from '../../src/main.js'
import { eventually } from '../helpers/databases.js'
import { buildTestImages, docker, probeEngine, removeContainers, requireEngineInCi } from '../helpers/docker.js'

const engine = await probeEngine()
requireEngineInCi(engine)

const SPEC = `apiVersion: flowforge.io/v1
kind: Plugin
metadata:
  name: e2e-hello
  labels: { team: e2e }
spec:
  state: running
  manifest:
    name: Hello
    version: 1.0.0
    image: flowforge-test/http:1
    imagePullPolicy: Never
    port: 8080
    healthCheck: { path: /health }
  environment:
    GREETING: hello
    API_TOKEN: s3cr3t-value
`

describe.skipIf(!engine.reachable)('end to end: spec file → container → PATCH → file deleted', () => {
  let daemon: Daemon
  let specsDir: string
  let api: string

  beforeAll(async () => {
    await buildTestImages()
    await removeContainers('forgehook-e2e-')
    specsDir = await mkdtemp(path.join(tmpdir(), 'ff-e2e-specs-'))
    const config = loadConfig({
      PORT: '0',
      SPECS_DIR: specsDir,
      MANAGER_INSTANCE: 'e2e',
      HOST_PORT_RANGE: '4800-4899',
      STOP_TIMEOUT: '2',
      SPECS_RESCAN_INTERVAL: '1s',
    })
    daemon = await startDaemon({ ...config, database: { kind: 'embedded', dataDir: 'memory', sqlPort: 0 } }, silentLogger())
    await daemon.ready
    api = `http://${daemon.apiAddress.host}:${daemon.apiAddress.port}`
  }, 120_000)
  afterAll(async () => {
    await daemon?.stop()
    await removeContainers('forgehook-e2e-')
    if (specsDir) await rm(specsDir, { recursive: true, force: true })
  })

  async function getPlugin(): Promise<Record<string, any> | undefined> {
    const response = await fetch(`${api}/api/v1/plugins/e2e-hello`)
    if (response.status === 404) return undefined
    expect(response.status).toBe(200)
    return (await response.json()) as Record<string, any>
  }

  test('a dropped file runs, a PATCH stops it, deleting the file uninstalls it', async () => {
    await writeFile(path.join(specsDir, 'hello.yaml'), SPEC)

    const running = await eventually(async () => {
      const plugin = await getPlugin()
      return plugin?.status.phase === 'running' && plugin.status.observedGeneration === plugin.metadata.generation ? plugin : undefined
    }, 30_000, 'the plugin running')
    expect(running.metadata).toMatchObject({ name: 'e2e-hello', source: 'file:hello.yaml', labels: { team: 'e2e' } })
    expect(running.spec.environment).toEqual({ GREETING: 'hello', API_TOKEN: '***' })
    const hostPort = running.status.hostPort as number
    expect((await (await fetch(`http://127.0.0.1:${hostPort}/index.html`)).text()).trim()).toBe('hello from version 1')
    // The container still gets the real secret.
    expect(await docker('inspect', '-f', '{{range .Config.Env}}{{println .}}{{end}}', running.status.containerId)).toContain('API_TOKEN=s3cr3t-value')
    // And the reverse proxy reaches it too.
    expect((await (await fetch(`${api}/plugins/e2e-hello/index.html`)).text()).trim()).toBe('hello from version 1')

    const patched = await fetch(`${api}/api/v1/plugins/e2e-hello`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/merge-patch+json', 'if-match': `"${running.metadata.resourceVersion}"` },
      body: JSON.stringify({ spec: { state: 'stopped' } }),
    })
    expect(patched.status).toBe(200)
    await eventually(async () => ((await getPlugin())?.status.phase === 'stopped' ? true : undefined), 30_000, 'the plugin stopped')
    expect(await docker('inspect', '-f', '{{.State.Status}}', running.status.containerId)).toBe('exited')

    await rm(path.join(specsDir, 'hello.yaml'))
    await eventually(async () => ((await getPlugin()) === undefined ? true : undefined), 30_000, 'the plugin uninstalled')
    expect(await docker('ps', '-aq', '--filter', 'name=^/forgehook-e2e-hello$')).toBe('')

    const events = (await (await fetch(`${api}/api/v1/events?limit=100`)).json()) as { items: { type: string; forgehookId: string }[] }
    const types = events.items.filter((event) => event.forgehookId === 'e2e-hello').map((event) => event.type).reverse()
    expect(types).toEqual(expect.arrayContaining(['plugin:installed', 'plugin:started', 'plugin:stopped', 'plugin:uninstalled']))
    expect(JSON.stringify(events)).not.toContain('s3cr3t-value')
  })
})
