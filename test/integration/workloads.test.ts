// Real plugin workloads on the real Docker engine, through the whole daemon: plugins reach
// each other by name on their installation's network and nobody else's, the network comes
// back within a resync, and the container options (command, args, user, read-only root,
// more ports, bounded logs, limits) are what Docker runs.
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { loadConfig } from '../../src/config.js'
import { silentLogger } from '../../src/logger.js'
import { startDaemon, type Daemon } from '../../src/main.js'
import { eventually } from '../helpers/databases.js'
import { buildTestImages, docker, probeEngine, removeContainers, requireEngineInCi } from '../helpers/docker.js'

const engine = await probeEngine()
requireEngineInCi(engine)

const PREFIX = 'wl-'
const INSTANCE = 'it-workloads'
const OTHER_INSTANCE = 'it-workloads-other'

interface PluginAnswer {
  metadata: { generation: number }
  status: { phase: string; observedGeneration: number; containerId: string | null; hostPort: number | null; error: string | null; extraPorts: { name: string; hostPort: number }[] }
}

describe.skipIf(!engine.reachable)('plugin workloads on the real Docker engine', () => {
  let daemon: Daemon
  let other: Daemon
  let api: string
  let otherApi: string

  async function start(instance: string, ports: string): Promise<Daemon> {
    const config = loadConfig({ PORT: '0', SPECS_DIR: '/nonexistent-wl-specs', MANAGER_INSTANCE: instance, HOST_PORT_RANGE: ports, STOP_TIMEOUT: '2', RESYNC_INTERVAL: '2' })
    const started = await startDaemon({ ...config, database: { kind: 'embedded', dataDir: 'memory', sqlPort: 0 } }, silentLogger())
    await started.ready
    return started
  }

  async function cleanUp(): Promise<void> {
    await removeContainers(`forgehook-${PREFIX}`)
    for (const instance of [INSTANCE, OTHER_INSTANCE]) await docker('network', 'rm', `flowforge-${instance}`).catch(() => undefined)
  }

  beforeAll(async () => {
    await buildTestImages()
    await cleanUp()
    daemon = await start(INSTANCE, '4300-4349')
    other = await start(OTHER_INSTANCE, '4350-4399')
    api = `http://${daemon.apiAddress.host}:${daemon.apiAddress.port}`
    otherApi = `http://${other.apiAddress.host}:${other.apiAddress.port}`
  }, 120_000)
  afterAll(async () => {
    await daemon?.stop()
    await other?.stop()
    await cleanUp()
  })

  function manifest(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { name: 'Workload test', version: '1.0.0', image: 'flowforge-test/http:1', imagePullPolicy: 'Never', port: 8080, ...extra }
  }

  async function put(base: string, name: string, spec: Record<string, unknown>): Promise<void> {
    const document = { apiVersion: 'flowforge.io/v1', kind: 'Plugin', metadata: { name: `${PREFIX}${name}` }, spec }
    const response = await fetch(`${base}/api/v1/plugins/${PREFIX}${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(document) })
    if (![200, 201].includes(response.status)) throw new Error(`PUT ${name}: ${response.status} ${await response.text()}`)
  }

  function converged(base: string, name: string, check: (plugin: PluginAnswer) => boolean = () => true): Promise<PluginAnswer> {
    return eventually(async () => {
      const response = await fetch(`${base}/api/v1/plugins/${PREFIX}${name}`)
      if (response.status !== 200) return undefined
      const plugin = (await response.json()) as PluginAnswer
      return plugin.status.observedGeneration === plugin.metadata.generation && plugin.status.phase === 'running' && check(plugin) ? plugin : undefined
    }, 30_000, `${PREFIX}${name} converged`)
  }

  /**
   * GET http://NAME:8080/index.html from inside the container; the answer, or undefined when
   * the name does not resolve or the address does not answer. The test images' static
   * busybox wget cannot resolve names itself (static glibc), so the name is resolved with
   * busybox nslookup against Docker's DNS, then fetched by address with busybox nc.
   */
  async function fetchFrom(containerId: string, name: string): Promise<string | undefined> {
    const address = await resolveFrom(containerId, name)
    if (!address) return undefined
    return wgetFrom(containerId, address)
  }

  async function resolveFrom(containerId: string, name: string): Promise<string | undefined> {
    const answer = await docker('exec', containerId, '/bin/busybox', 'nslookup', name).catch(() => '')
    return /Name:\s+\S+\s+Address:\s+(\d+\.\d+\.\d+\.\d+)/.exec(answer)?.[1]
  }

  /** An HTTP/1.0 GET by address with busybox nc (the static busybox wget crashes in a container): the body, or undefined. */
  async function wgetFrom(containerId: string, address: string): Promise<string | undefined> {
    const request = `printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 3 ${address} 8080`
    const answer = await docker('exec', containerId, '/bin/sh', '-c', request).catch(() => '')
    if (!answer.startsWith('HTTP/1.1 200')) return undefined
    return answer.split(/\r?\n\r?\n/).slice(1).join('\n\n').trim()
  }

  test('a plugin reaches another by name on the installation network; a plugin of another installation cannot', async () => {
    await put(api, 'a', { manifest: manifest() })
    await put(api, 'b', { manifest: manifest({ image: 'flowforge-test/http:2' }) })
    await put(otherApi, 'c', { manifest: manifest() })
    const a = await converged(api, 'a')
    await converged(api, 'b')
    const c = await converged(otherApi, 'c')
    expect(await fetchFrom(a.status.containerId!, `${PREFIX}b`)).toBe('hello from version 2')
    // From the other installation: the name does not resolve, and b's address does not answer.
    expect(await resolveFrom(c.status.containerId!, `${PREFIX}b`)).toBeUndefined()
    const bAddress = await resolveFrom(a.status.containerId!, `${PREFIX}b`)
    expect(bAddress).toMatch(/^\d+\.\d+\.\d+\.\d+$/)
    expect(await wgetFrom(c.status.containerId!, bAddress!)).toBeUndefined()
    expect(await docker('network', 'inspect', '-f', '{{index .Labels "io.flowforge.instance"}} {{.Driver}}', `flowforge-${INSTANCE}`)).toBe(`${INSTANCE} bridge`)
  })

  test('an isolated plugin is off the network: nobody reaches it by name', async () => {
    await put(api, 'loner', { manifest: manifest(), network: { isolated: true } })
    const loner = await converged(api, 'loner')
    const a = await converged(api, 'a')
    expect(await resolveFrom(a.status.containerId!, `${PREFIX}loner`)).toBeUndefined()
    expect(await docker('inspect', '-f', '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}', loner.status.containerId!)).toBe('bridge')
  })

  test('a removed installation network is back within a resync, with every plugin on it again', async () => {
    const a = await converged(api, 'a')
    const b = await converged(api, 'b')
    for (const plugin of [a, b]) await docker('network', 'disconnect', '-f', `flowforge-${INSTANCE}`, plugin.status.containerId!)
    await docker('network', 'rm', `flowforge-${INSTANCE}`)
    await eventually(async () => ((await fetchFrom(a.status.containerId!, `${PREFIX}b`)) === 'hello from version 2' ? true : undefined), 20_000, 'b reachable again')
    expect(await docker('inspect', '-f', '{{.Id}}', a.status.containerId!)).toBe(a.status.containerId)
  })

  test('command and args are what the container runs; changing args recreates it with the new ones', async () => {
    const command = ['/bin/busybox', 'httpd', '-f', '-h', '/www']
    await put(api, 'cmd', { manifest: manifest({ command, args: ['-p', '8080'] }) })
    const first = await converged(api, 'cmd')
    expect(await docker('inspect', '-f', '{{json .Config.Entrypoint}} {{json .Config.Cmd}}', first.status.containerId!)).toBe(`${JSON.stringify(command)} ["-p","8080"]`)
    await put(api, 'cmd', { manifest: manifest({ command, args: ['-p', '8080', '-v'] }) })
    const second = await converged(api, 'cmd', (plugin) => plugin.metadata.generation === 2)
    expect(second.status.containerId).not.toBe(first.status.containerId)
    expect(await docker('inspect', '-f', '{{json .Config.Cmd}}', second.status.containerId!)).toBe('["-p","8080","-v"]')
  })

  test('a non-root user runs as that uid; a read-only root refuses writes outside its tmpfs', async () => {
    await put(api, 'locked', { manifest: manifest({ user: '1000:1000', readOnlyRootFilesystem: true, tmpfs: ['/tmp'], capDrop: ['ALL'] }) })
    const locked = await converged(api, 'locked')
    const id = locked.status.containerId!
    expect(await docker('exec', id, '/bin/busybox', 'id', '-u')).toBe('1000')
    await expect(docker('exec', id, '/bin/sh', '-c', 'echo x > /www/written')).rejects.toThrow(/Read-only file system/)
    expect(await docker('exec', id, '/bin/sh', '-c', 'echo x > /tmp/written && cat /tmp/written')).toBe('x')
    expect(await docker('inspect', '-f', '{{json .HostConfig.CapDrop}} {{.HostConfig.ReadonlyRootfs}}', id)).toBe('["ALL"] true')
  })

  test('a second port answers on its own host port, shown in the status', async () => {
    const command = ['/bin/sh', '-c', '/bin/busybox httpd -p 9090 -h /www; exec /bin/busybox httpd -f -p 8080 -h /www']
    await put(api, 'ports', { manifest: manifest({ command, ports: [{ name: 'admin', containerPort: 9090 }] }) })
    const plugin = await converged(api, 'ports', (row) => row.status.extraPorts.length === 1)
    const admin = plugin.status.extraPorts[0]!
    expect(admin.name).toBe('admin')
    expect(admin.hostPort).not.toBe(plugin.status.hostPort)
    await eventually(async () => {
      const response = await fetch(`http://127.0.0.1:${admin.hostPort}/index.html`).catch(() => undefined)
      return response?.status === 200 ? true : undefined
    }, 10_000, 'the second port answering')
  })

  test('every container gets bounded json-file logs, a process limit and a default memory limit', async () => {
    const plugin = await converged(api, 'a')
    expect(await docker('inspect', '-f', '{{json .HostConfig.LogConfig}}', plugin.status.containerId!)).toBe('{"Type":"json-file","Config":{"max-file":"3","max-size":"10m"}}')
    expect(await docker('inspect', '-f', '{{.HostConfig.PidsLimit}} {{.HostConfig.Memory}}', plugin.status.containerId!)).toBe(`512 ${512 * 1024 * 1024}`)
    // forgectl logs and the API still read them.
    const logs = await fetch(`${api}/api/v1/plugins/${PREFIX}a/logs?tail=10`)
    expect(logs.status).toBe(200)
  })
})
