// A real multi-node Docker Swarm on this one machine, for the Swarm runtime's tests (issue 17).
//
// Each node is a `dockerd` of its own in a network namespace of its own, entered with
// `nsenter --net=/var/run/netns/NAME` (not `ip netns exec`: that remounts /sys, hides the
// cgroup mounts and dockerd fails with "Devices cgroup isn't mounted") and a UTS namespace
// of its own (`unshare --uts`) so that every node has its own hostname, hence its own swarm
// node name. Each has its own --data-root, --exec-root, --pidfile, unix socket, cgroup parent
// and daemon.json, and runs with `--iptables=false`: it never touches the host's firewall
// (its docker0 lives inside its namespace; `--bridge none` would leave a task that joins
// no network without any host-mode port). The namespaces are joined by veth pairs to a bridge on the host
// (10.213.N.1/24; the nodes are .10, .11, ...), with NO default route: nothing in a node can
// try to leave the machine. The host engine's FORWARD policy is DROP, so one ACCEPT rule for
// the bridge goes into DOCKER-USER. Images come from the host engine (`docker save`), are
// loaded into every node and pushed from node 0 to a Debian `docker-registry` process on the
// bridge address (insecure-registries for it in each node's daemon.json), so a service can
// name `10.213.N.1:5000/<image>` and every node pulls it from there.
//
// This kernel has no IPVS: the routing mesh (`--publish mode=ingress`) and VIP endpoints do
// not work. Tests use `--publish mode=host,...` and `--endpoint-mode dnsrr`.
//
// Everything a cluster makes carries its name prefix `ffsw<pid base 36><counter>`: the
// bridge `<prefix>-br`, veths `<prefix>-h<i>` (host side), namespaces `<prefix>-<i>`, its
// folder `$TMPDIR/<prefix>`, cgroups `/<prefix>-n<i>`, and the DOCKER-USER rule names the
// bridge. stop() removes all of it by looking for the prefix (not from what start()
// remembers), so it works after a partial start and twice. cleanupStaleSwarmClusters()
// does the same for every prefix whose owning process is gone (a crashed run).
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { expect, test } from 'vitest'

const execFileAsync = promisify(execFile)

export const SWARM_PREFIX = 'ffsw'
/** The test images the cluster carries unless told otherwise (test/images/build.sh). */
export const DEFAULT_SWARM_IMAGES = ['flowforge-test/http:1', 'flowforge-test/http:2', 'flowforge-test/unhealthy:1', 'flowforge-test/http-healthcheck:1', 'flowforge-test/crash:1']
const SUBNET_BASE = '10.213'
const REGISTRY_PORT = 5000
const TOOLS = ['dockerd', 'docker', 'containerd', 'runc', 'nsenter', 'unshare', 'ip', 'iptables', 'umount', 'docker-registry']

export interface SwarmNode {
  /** Its hostname, which is also its swarm node name: `<prefix>-node<i>`. */
  name: string
  /** Its address on the bridge (10.213.N.10 + i), where host-mode published ports answer. */
  ip: string
  /** `unix:///…/docker.sock`: its engine, reachable from the host. */
  dockerHost: string
  nodeId: string
  role: 'manager' | 'worker'
  /** The network namespace (`ip netns`) it runs in. */
  netns: string
  /** Its dockerd's log file. */
  logPath: string
}

export interface SwarmClusterOptions {
  /** Default 3. */
  nodes?: number
  /** How many of them are managers (the first ones). Default 1. */
  managers?: number
  /** Images from the host engine to load into every node and push to the cluster's registry. Default DEFAULT_SWARM_IMAGES. */
  images?: string[]
  /** `docker swarm init --dispatcher-heartbeat`. Default 2s: a killed node is Down after ~6-8 s (3 heartbeats plus jitter) instead of ~15 s with Swarm's 5 s. */
  dispatcherHeartbeat?: string
}

export interface SwarmTimings {
  /** The whole startSwarmCluster(), ms. */
  startMs: number
  /** Its phases, ms: network, engines (all dockerds answering), swarm (init + joins + all Ready), imagesLoad (into node 0), imagesPush (to the registry, while the other nodes load). */
  phases: Record<string, number>
  /** The last stop(), ms (undefined before it). */
  stopMs?: number
}

export interface SwarmCluster {
  prefix: string
  /** The cluster's temporary folder (dockerd logs, data roots, the registry's storage). */
  dir: string
  /** The bridge's address on the host (the registry listens there). */
  bridgeIp: string
  nodes: SwarmNode[]
  /** DOCKER_HOST of the (first) manager node: `unix:///…/docker.sock`. */
  managerHost: string
  /** `10.213.N.1:5000`: the registry the images were pushed to. */
  registry: string
  /** `<registry>/<image>`, e.g. `10.213.0.1:5000/flowforge-test/http:1`. */
  imageRef(image: string): string
  /** The docker CLI against node i; resolves to its trimmed stdout, rejects with its stderr. */
  docker(nodeIndex: number, ...args: string[]): Promise<string>
  /** `kill -9` of node i's dockerd (its containerd goes with it; containerd-shim processes and containers may stay, as after a crash). */
  killNode(nodeIndex: number): Promise<void>
  /** Starts node i's dockerd again (stops it first, SIGTERM, if it runs) and waits until the manager sees it Ready. */
  restartNode(nodeIndex: number): Promise<void>
  /** `docker node update --availability drain` of node i, from the manager. */
  drain(nodeIndex: number): Promise<void>
  /** `docker node update --availability active` of node i, from the manager. */
  activate(nodeIndex: number): Promise<void>
  /** Waits until the manager reports node i in this state (`ready`, `down`, ...); returns how long it took, ms. */
  waitForNodeState(nodeIndex: number, state: string, timeoutMs?: number): Promise<number>
  /** Tears everything down: processes, containers, mounts, namespaces, veths, bridge, the firewall rule, the registry, the folder. Safe twice. */
  stop(): Promise<void>
  timings: SwarmTimings
}

// --- availability ----------------------------------------------------------------------

export async function probeSwarmTools(): Promise<{ available: boolean; reason: string }> {
  if (process.platform !== 'linux') return { available: false, reason: `a test swarm needs Linux (this is ${process.platform})` }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return { available: false, reason: 'a test swarm needs root (network namespaces, veths, iptables, dockerd)' }
  const missing: string[] = []
  for (const tool of TOOLS) {
    try {
      await execFileAsync('sh', ['-c', `command -v ${tool}`])
    } catch {
      missing.push(tool)
    }
  }
  if (missing.length > 0) {
    return { available: false, reason: `missing ${missing.join(', ')} (Debian: apt-get install docker.io iproute2 iptables util-linux mount docker-registry)` }
  }
  try {
    await execFileAsync('docker', ['info', '--format', '{{.ServerVersion}}'], { timeout: 10_000 })
  } catch (error) {
    return { available: false, reason: `the host engine (the images' source) does not answer: ${errorText(error)}` }
  }
  return { available: true, reason: 'dockerd, docker-registry, ip, iptables, nsenter found' }
}

/** Declares the CI check; call at the top level of a swarm test file. */
export function requireSwarmInCi(tools: { available: boolean; reason: string }): void {
  test.runIf(process.env.CI === 'true')('the tools for a test swarm are installed in CI', () => {
    expect(tools.available, tools.reason).toBe(true)
  })
}

// --- start -----------------------------------------------------------------------------

let counter = 0
const active = new Set<string>()

export async function startSwarmCluster(options: SwarmClusterOptions = {}): Promise<SwarmCluster> {
  const nodeCount = options.nodes ?? 3
  const managerCount = options.managers ?? 1
  const images = options.images ?? DEFAULT_SWARM_IMAGES
  if (nodeCount < 1 || nodeCount > 9) throw new Error(`nodes must be 1-9, not ${nodeCount}`)
  if (managerCount < 1 || managerCount > nodeCount) throw new Error(`managers must be 1-${nodeCount}, not ${managerCount}`)
  const started = Date.now()
  const phases: Record<string, number> = {}
  let phaseStart = started
  const phase = (name: string) => {
    const now = Date.now()
    phases[name] = now - phaseStart
    phaseStart = now
  }

  await cleanupStaleSwarmClusters()
  phase('cleanupStale')

  // Interface names have at most 15 characters: `ffsw` + pid (≤ 5) + counter (1) + `-h0`.
  const prefix = `${SWARM_PREFIX}${process.pid.toString(36)}${(counter++ % 36).toString(36)}`
  const dir = join(tmpdir(), prefix)
  active.add(prefix)
  const timings: SwarmTimings = { startMs: 0, phases }
  const procs = new Map<number, ChildProcess>()

  const stop = async () => {
    const t0 = Date.now()
    try {
      await cleanupPrefix(prefix)
    } finally {
      active.delete(prefix)
      timings.stopMs = Date.now() - t0
    }
  }

  try {
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'owner'), `${process.pid}\n`)
    const subnet = await freeSubnet()
    const bridge = `${prefix}-br`
    const bridgeIp = `${subnet}.1`
    const registry = `${bridgeIp}:${REGISTRY_PORT}`

    // The network: a bridge on the host, one veth pair and one namespace per node.
    await run('ip', ['link', 'add', bridge, 'type', 'bridge'])
    await run('ip', ['addr', 'add', `${bridgeIp}/24`, 'dev', bridge])
    await run('ip', ['link', 'set', bridge, 'up'])
    await allowForwarding(bridge)
    const nodes: SwarmNode[] = []
    await settled(
      Array.from({ length: nodeCount }, async (_, i) => {
        const netns = `${prefix}-${i}`
        const ip = `${subnet}.${10 + i}`
        await run('ip', ['netns', 'add', netns])
        await run('ip', ['link', 'add', `${prefix}-h${i}`, 'type', 'veth', 'peer', 'name', `${prefix}-n${i}`])
        await run('ip', ['link', 'set', `${prefix}-h${i}`, 'master', bridge, 'up'])
        await run('ip', ['link', 'set', `${prefix}-n${i}`, 'netns', netns])
        await run('ip', ['-n', netns, 'link', 'set', `${prefix}-n${i}`, 'name', 'eth0'])
        await run('ip', ['-n', netns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0'])
        await run('ip', ['-n', netns, 'link', 'set', 'eth0', 'up'])
        await run('ip', ['-n', netns, 'link', 'set', 'lo', 'up'])
        // No default route: only the bridge's /24 is reachable from a node.
        const nodeDir = join(dir, `n${i}`)
        mkdirSync(nodeDir, { recursive: true })
        writeFileSync(
          join(nodeDir, 'daemon.json'),
          `${JSON.stringify({ 'insecure-registries': [registry], 'cgroup-parent': `/${prefix}-n${i}`, 'log-level': 'info', 'max-concurrent-downloads': 6 }, null, 2)}\n`,
        )
        nodes[i] = {
          name: `${prefix}-node${i}`,
          ip,
          dockerHost: `unix://${join(nodeDir, 'docker.sock')}`,
          nodeId: '',
          role: i < managerCount ? 'manager' : 'worker',
          netns,
          logPath: join(nodeDir, 'dockerd.log'),
        }
      }),
    )
    phase('network')

    const running = (i: number) => {
      const child = procs.get(i)
      return child !== undefined && child.exitCode === null && child.signalCode === null
    }
    const cli = (i: number, args: string[], timeoutMs = 60_000) => dockerCli(nodeAt(nodes, i).dockerHost, args, timeoutMs)
    const startNode = async (i: number) => {
      const node = nodeAt(nodes, i)
      const nodeDir = join(dir, `n${i}`)
      const log = openSync(node.logPath, 'a')
      const args = [
        `--net=/var/run/netns/${node.netns}`,
        'unshare',
        '--uts',
        'sh',
        '-c',
        'hostname "$0" && exec "$@"',
        node.name,
        'dockerd',
        '--config-file',
        join(nodeDir, 'daemon.json'),
        '--data-root',
        join(nodeDir, 'data'),
        '--exec-root',
        join(nodeDir, 'exec'),
        '--pidfile',
        join(nodeDir, 'dockerd.pid'),
        '-H',
        node.dockerHost,
        // The default bridge stays (inside the node's namespace, so it clashes with nothing):
        // with `--bridge none` a task that joins no network publishes no host-mode port at all.
        '--iptables=false',
        '--ip6tables=false',
        '--ip-masq=false',
      ]
      // nsenter (net only), unshare (no --fork) and sh all exec: the child's pid is dockerd's.
      const child = spawn('nsenter', args, { stdio: ['ignore', log, log], detached: true })
      closeSync(log)
      child.unref()
      child.on('error', () => {})
      if (child.pid !== undefined) procs.set(i, child)
      const deadline = Date.now() + 60_000
      while (true) {
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(`node ${i}'s dockerd exited (${child.exitCode ?? child.signalCode}); its log ends:\n${tail(node.logPath)}`)
        }
        try {
          await dockerCli(node.dockerHost, ['info', '--format', '{{.ID}}'], 2_000)
          return
        } catch {
          if (Date.now() > deadline) throw new Error(`node ${i}'s dockerd did not answer within 60 s; its log ends:\n${tail(node.logPath)}`)
          await sleep(100)
        }
      }
    }

    const registryStarted = startRegistry(dir, registry)
    const saved = saveImages(images, join(dir, 'images.tar'))
    // Awaited below; until then a rejection must not count as unhandled.
    registryStarted.catch(() => {})
    saved.catch(() => {})
    await settled(nodes.map((_, i) => startNode(i)))
    phase('engines')

    // The swarm: init on node 0, the other managers and the workers join at once.
    const manager = nodeAt(nodes, 0)
    await cli(0, [
      'swarm',
      'init',
      '--advertise-addr',
      manager.ip,
      '--listen-addr',
      `${manager.ip}:2377`,
      '--dispatcher-heartbeat',
      options.dispatcherHeartbeat ?? '2s',
      // Overlay subnets from a pool of their own, far from the bridge's.
      '--default-addr-pool',
      '10.214.0.0/16',
    ])
    const [workerToken, managerToken] = await Promise.all([cli(0, ['swarm', 'join-token', '-q', 'worker']), cli(0, ['swarm', 'join-token', '-q', 'manager'])])
    await Promise.all(
      nodes.slice(1).map((node, k) =>
        cli(k + 1, ['swarm', 'join', '--token', node.role === 'manager' ? managerToken : workerToken, '--advertise-addr', node.ip, '--listen-addr', `${node.ip}:2377`, `${manager.ip}:2377`]),
      ),
    )
    await Promise.all(nodes.map(async (node, i) => (node.nodeId = await cli(i, ['info', '--format', '{{.Swarm.NodeID}}']))))
    await waitFor(
      async () => {
        const lines = (await cli(0, ['node', 'ls', '--format', '{{.ID}} {{.Status}} {{.Availability}}'])).split('\n')
        return nodes.every((node) => lines.includes(`${node.nodeId} Ready Active`))
      },
      60_000,
      'every node Ready and Active',
    )
    phase('swarm')

    // Images: one `docker save` from the host engine, loaded into every node, pushed from node 0.
    // The other nodes load while node 0 pushes.
    await saved
    const load = (i: number) => cli(i, ['load', '-q', '-i', join(dir, 'images.tar')], 120_000)
    await load(0)
    phase('imagesLoad')
    await Promise.all([
      ...nodes.slice(1).map((_, k) => load(k + 1)),
      registryStarted.then(() =>
        Promise.all(
          images.map(async (image) => {
            await cli(0, ['tag', image, `${registry}/${image}`])
            await cli(0, ['push', `${registry}/${image}`], 120_000)
          }),
        ),
      ),
    ])
    phase('imagesPush')

    const restartNode = async (i: number) => {
      const child = procs.get(i)
      if (child && child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
        child.kill('SIGTERM')
        await Promise.race([exited, sleep(30_000).then(() => child.kill('SIGKILL'))])
        await exited
      }
      await startNode(i)
      await waitFor(
        async () => (await cli(i, ['info', '--format', '{{.Swarm.LocalNodeState}}'])) === 'active',
        60_000,
        `node ${i} back in the swarm`,
      )
      await waitForState(i, 'ready', 60_000)
    }
    const waitForState = async (i: number, state: string, timeoutMs = 60_000) => {
      const t0 = Date.now()
      const node = nodeAt(nodes, i)
      // Asked of a manager other than the node itself when there is one that runs.
      const other = nodes.findIndex((n, k) => n.role === 'manager' && k !== i && running(k))
      const asked = other >= 0 ? other : 0
      await waitFor(
        async () => (await cli(asked, ['node', 'inspect', node.nodeId, '--format', '{{.Status.State}}'], 5_000)) === state,
        timeoutMs,
        `node ${i} (${node.name}) ${state}`,
      )
      return Date.now() - t0
    }

    timings.startMs = Date.now() - started
    return {
      prefix,
      dir,
      bridgeIp,
      nodes,
      managerHost: manager.dockerHost,
      registry,
      imageRef: (image) => `${registry}/${image}`,
      docker: (i, ...args) => cli(i, args, 120_000),
      killNode: async (i) => {
        const child = procs.get(i)
        if (!child || child.exitCode !== null || child.signalCode !== null) throw new Error(`node ${i}'s dockerd is not running`)
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
        child.kill('SIGKILL')
        await exited
      },
      restartNode,
      drain: async (i) => void (await cli(0, ['node', 'update', '--availability', 'drain', nodeAt(nodes, i).nodeId])),
      activate: async (i) => void (await cli(0, ['node', 'update', '--availability', 'active', nodeAt(nodes, i).nodeId])),
      waitForNodeState: waitForState,
      stop,
      timings,
    }
  } catch (error) {
    // A failed start removes what it made before it reports.
    const cleanup = await stop().then(
      () => '',
      (e: Error) => `; ${e.message}`,
    )
    throw new Error(`test swarm ${prefix} did not start: ${(error as Error).message}${cleanup}`, { cause: error })
  }
}

/** Promise.all that waits for every promise before it rejects: nothing keeps running behind a cleanup. */
async function settled<T>(promises: Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(promises)
  const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected')
  if (failed) throw failed.reason
  return results.map((result) => (result as PromiseFulfilledResult<T>).value)
}

function nodeAt(nodes: SwarmNode[], i: number): SwarmNode {
  const node = nodes[i]
  if (!node) throw new Error(`no node ${i} (the cluster has ${nodes.length})`)
  return node
}

async function dockerCli(host: string, args: string[], timeoutMs: number): Promise<string> {
  const env = { ...process.env }
  for (const key of ['DOCKER_HOST', 'DOCKER_CONTEXT', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH']) delete env[key]
  try {
    const { stdout } = await execFileAsync('docker', ['-H', host, ...args], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, env })
    return stdout.trim()
  } catch (error) {
    throw new Error(`docker -H ${host} ${args.join(' ')}: ${errorText(error)}`)
  }
}

async function run(command: string, args: string[], timeoutMs = 30_000): Promise<string> {
  try {
    const { stdout } = await execFileAsync(command, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 })
    return stdout
  } catch (error) {
    throw new Error(`${command} ${args.join(' ')}: ${errorText(error)}`)
  }
}

function errorText(error: unknown): string {
  const e = error as { stderr?: string; message?: string }
  return (e.stderr?.trim() || e.message || String(error)).slice(0, 4_000)
}

function tail(path: string, lines = 30): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n')
  } catch {
    return '(no log)'
  }
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  while (true) {
    try {
      if (await check()) return
    } catch (error) {
      last = errorText(error)
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last})` : ''}`)
    await sleep(200)
  }
}

/** The first 10.213.N.0/24 that no route on the host overlaps. */
async function freeSubnet(): Promise<string> {
  const routes = (await run('ip', ['-4', '-o', 'route', 'show', 'table', 'all']))
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .flatMap((words) => words.filter((word) => /^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(word)).slice(0, 1))
  const addresses = (await run('ip', ['-4', '-o', 'addr', 'show'])).match(/inet \d+\.\d+\.\d+\.\d+\/\d+/g)?.map((word) => word.slice(5)) ?? []
  const taken = [...routes, ...addresses].map(parseCidr).filter((cidr) => cidr.bits > 0)
  for (let n = 0; n < 256; n++) {
    const candidate = parseCidr(`${SUBNET_BASE}.${n}.0/24`)
    if (!taken.some((cidr) => overlaps(cidr, candidate))) return `${SUBNET_BASE}.${n}`
  }
  throw new Error(`no free /24 in ${SUBNET_BASE}.0.0/16`)
}

function parseCidr(text: string): { base: number; bits: number } {
  const [address = '', bits = '32'] = text.split('/')
  const base = address.split('.').reduce((value, part) => value * 256 + Number(part), 0)
  return { base, bits: Number(bits) }
}

function overlaps(a: { base: number; bits: number }, b: { base: number; bits: number }): boolean {
  const size = 2 ** (32 - Math.min(a.bits, b.bits))
  return Math.floor(a.base / size) === Math.floor(b.base / size)
}

async function allowForwarding(bridge: string): Promise<void> {
  // Node to node traffic crosses the bridge, and with br_netfilter it goes through FORWARD,
  // whose policy the host engine set to DROP. DOCKER-USER is the chain it leaves to us.
  const chain = (await execFileAsync('iptables', ['-w', '-S', 'DOCKER-USER']).then(() => true, () => false)) ? 'DOCKER-USER' : 'FORWARD'
  await run('iptables', ['-w', '-I', chain, '-i', bridge, '-o', bridge, '-j', 'ACCEPT', '-m', 'comment', '--comment', `${bridge} test swarm`])
}

async function startRegistry(dir: string, address: string): Promise<void> {
  const config = join(dir, 'registry.yml')
  writeFileSync(
    config,
    ['version: 0.1', 'log:', '  level: error', 'storage:', `  filesystem: { rootdirectory: ${join(dir, 'registry')} }`, '  delete: { enabled: true }', 'http:', `  addr: ${address}`, ''].join('\n'),
  )
  const logPath = join(dir, 'registry.log')
  const log = openSync(logPath, 'a')
  const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', log, log], detached: true })
  closeSync(log)
  child.unref()
  child.on('error', () => {})
  const deadline = Date.now() + 15_000
  while (true) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited with code ${child.exitCode}: ${tail(logPath)}`)
    try {
      const response = await fetch(`http://${address}/v2/`, { signal: AbortSignal.timeout(1_000) })
      if (response.status === 200) return
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`docker-registry did not answer on ${address} within 15 s: ${tail(logPath)}`)
    await sleep(50)
  }
}

async function saveImages(images: string[], path: string): Promise<void> {
  if (images.length === 0) {
    // An empty archive still loads: keep the flow the same.
    throw new Error('images must name at least one image')
  }
  await run('docker', ['save', '-o', path, ...images], 120_000).catch((error: Error) => {
    throw new Error(`${error.message} (build the test images: bash test/images/build.sh)`)
  })
}

// --- teardown --------------------------------------------------------------------------

/**
 * Removes every test swarm whose owner process is gone (a crashed or killed run), and those
 * of this process that are no longer running. A cluster another live process owns is kept.
 */
export async function cleanupStaleSwarmClusters(): Promise<string[]> {
  const prefixes = new Set<string>()
  const pattern = new RegExp(`^(${SWARM_PREFIX}[0-9a-z]+?)(-.*)?$`)
  for (const name of await listNetns()) prefixes.add(pattern.exec(name)?.[1] ?? '')
  for (const name of await listLinks()) prefixes.add(pattern.exec(name)?.[1] ?? '')
  for (const name of safeReaddir(tmpdir())) if (/^ffsw[0-9a-z]+$/.test(name)) prefixes.add(name)
  for (const rule of await forwardRules()) {
    const match = / -i (ffsw[0-9a-z]+)-br /.exec(rule)
    if (match?.[1]) prefixes.add(match[1])
  }
  for (const hierarchy of cgroupHierarchies()) {
    for (const name of safeReaddir(hierarchy)) {
      const match = /^(ffsw[0-9a-z]+)-n\d+$/.exec(name)
      if (match?.[1]) prefixes.add(match[1])
    }
  }
  prefixes.delete('')
  const removed: string[] = []
  for (const prefix of prefixes) {
    if (active.has(prefix)) continue
    const owner = ownerPid(prefix)
    if (owner !== undefined && owner !== process.pid && alive(owner)) continue
    await cleanupPrefix(prefix)
    removed.push(prefix)
  }
  return removed
}

function ownerPid(prefix: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(tmpdir(), prefix, 'owner'), 'utf8').trim())
    if (Number.isInteger(pid) && pid > 0) return pid
  } catch {
    // No folder (already removed, or a start that failed before it): decode the name.
  }
  const pid = Number.parseInt(prefix.slice(SWARM_PREFIX.length, -1), 36)
  return Number.isInteger(pid) && pid > 0 ? pid : undefined
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

/** Everything of one cluster, found by its prefix. Each step goes on when another fails; the errors are reported together. */
async function cleanupPrefix(prefix: string): Promise<void> {
  const dir = join(tmpdir(), prefix)
  const errors: string[] = []
  const step = async (what: string, action: () => Promise<void>) => {
    try {
      await action()
    } catch (error) {
      errors.push(`${what}: ${errorText(error)}`)
    }
  }
  const namespaces = (await listNetns()).filter((name) => name.startsWith(`${prefix}-`))

  await step('processes', async () => {
    // dockerd, containerd, the shims, docker-proxy: every process in a node's namespace, every
    // one whose command line names the cluster's folder (the registry too), and every process
    // in a node's cgroups (the containers).
    for (let round = 0; round < 20; round++) {
      const pids = new Set<number>([...processesInNetns(namespaces), ...processesNaming(dir), ...processesInCgroups(prefix)])
      pids.delete(process.pid)
      if (pids.size === 0) return
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // Gone already.
        }
      }
      await sleep(round < 5 ? 50 : 250)
    }
    const left = [...processesInNetns(namespaces), ...processesNaming(dir), ...processesInCgroups(prefix)].filter((pid) => pid !== process.pid)
    if (left.length > 0) throw new Error(`processes still alive: ${left.join(' ')}`)
  })
  await step('mounts', async () => {
    for (let round = 0; round < 3; round++) {
      const mounts = mountsUnder(dir)
      if (mounts.length === 0) return
      for (const mount of mounts) await execFileAsync('umount', ['-l', mount]).catch(() => {})
    }
    const left = mountsUnder(dir)
    if (left.length > 0) throw new Error(`still mounted: ${left.join(' ')}`)
  })
  await step('cgroups', async () => {
    for (const hierarchy of cgroupHierarchies()) {
      for (const name of safeReaddir(hierarchy)) {
        if (name.startsWith(`${prefix}-n`)) removeCgroup(join(hierarchy, name))
      }
    }
  })
  for (const name of namespaces) await step(`netns ${name}`, async () => void (await run('ip', ['netns', 'delete', name])))
  await step('firewall', async () => {
    for (const rule of await forwardRules()) {
      if (!rule.includes(` -i ${prefix}-br `)) continue
      const words = rule.split(/\s+/)
      // -A CHAIN spec... → -D CHAIN spec...; the comment is one quoted word in -S output.
      const spec = rule.replace(/^-A \S+ /, '')
      await run('sh', ['-c', `iptables -w -D ${words[1]} ${spec}`])
    }
  })
  for (const link of (await listLinks()).filter((name) => name.startsWith(`${prefix}-`))) {
    await step(`link ${link}`, async () => {
      await execFileAsync('ip', ['link', 'delete', link]).catch(async (error: unknown) => {
        if ((await listLinks()).includes(link)) throw error
      })
    })
  }
  await step('folder', async () => {
    if (mountsUnder(dir).length > 0) throw new Error(`not removing ${dir}: mounts remain under it`)
    rmSync(dir, { recursive: true, force: true })
  })
  if (errors.length > 0) throw new Error(`test swarm ${prefix} not fully removed: ${errors.join('; ')}`)
}

/**
 * What is left of the cluster `prefix` (SwarmCluster.prefix): namespaces, links, firewall
 * rules, processes, mounts, cgroups, its folder. Empty after a complete stop().
 */
export async function swarmLeftovers(prefix: string): Promise<string[]> {
  const dir = join(tmpdir(), prefix)
  const left: string[] = []
  for (const name of await listNetns()) if (name.startsWith(prefix)) left.push(`netns ${name}`)
  for (const name of await listLinks()) if (name.startsWith(prefix)) left.push(`link ${name}`)
  for (const rule of await forwardRules()) if (rule.includes(` -i ${prefix}`)) left.push(`iptables ${rule}`)
  for (const pid of processesNaming(dir)) left.push(`process ${pid} ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').slice(0, 200)}`)
  for (const pid of processesInCgroups(prefix)) left.push(`process ${pid} in a node cgroup`)
  for (const mount of mountsUnder(dir)) left.push(`mount ${mount}`)
  for (const hierarchy of cgroupHierarchies()) for (const name of safeReaddir(hierarchy)) if (name.startsWith(prefix)) left.push(`cgroup ${join(hierarchy, name)}`)
  if (existsSync(dir)) left.push(`folder ${dir}`)
  return left
}

async function listNetns(): Promise<string[]> {
  const output = await run('ip', ['netns', 'list']).catch(() => '')
  return output
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[0] ?? '')
    .filter((name) => name.startsWith(SWARM_PREFIX))
}

async function listLinks(): Promise<string[]> {
  const output = await run('ip', ['-o', 'link', 'show']).catch(() => '')
  return output
    .split('\n')
    .map((line) => /^\d+: ([^:@\s]+)/.exec(line)?.[1] ?? '')
    .filter((name) => name.startsWith(SWARM_PREFIX))
}

async function forwardRules(): Promise<string[]> {
  const rules: string[] = []
  for (const chain of ['DOCKER-USER', 'FORWARD']) {
    const output = await run('iptables', ['-w', '-S', chain]).catch(() => '')
    rules.push(...output.split('\n').filter((line) => line.startsWith('-A ') && line.includes(SWARM_PREFIX)))
  }
  return rules
}

function processesInNetns(namespaces: string[]): number[] {
  const inodes = new Set<string>()
  for (const name of namespaces) {
    try {
      inodes.add(`net:[${statSync(`/var/run/netns/${name}`).ino}]`)
    } catch {
      // Not there.
    }
  }
  if (inodes.size === 0) return []
  return allPids().filter((pid) => {
    try {
      return inodes.has(readlinkSync(`/proc/${pid}/ns/net`)) && alive(pid)
    } catch {
      return false
    }
  })
}

function processesNaming(dir: string): number[] {
  return allPids().filter((pid) => {
    try {
      if (!alive(pid)) return false
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
      // Only the programs a cluster runs: never a shell or an editor that mentions the path.
      const program = (args[0] ?? '').split('/').pop() ?? ''
      if (!['dockerd', 'containerd', 'containerd-shim-runc-v2', 'containerd-shim', 'docker-registry', 'docker-proxy', 'runc', 'nsenter', 'unshare'].includes(program)) return false
      return args.some((arg) => arg === dir || arg.includes(`${dir}/`))
    } catch {
      return false
    }
  })
}

function processesInCgroups(prefix: string): number[] {
  const pids: number[] = []
  const walk = (path: string) => {
    try {
      for (const line of readFileSync(join(path, 'cgroup.procs'), 'utf8').split('\n')) if (line) pids.push(Number(line))
    } catch {
      // Not a cgroup folder.
    }
    for (const entry of safeReaddir(path)) {
      const child = join(path, entry)
      try {
        if (statSync(child).isDirectory()) walk(child)
      } catch {
        // Removed meanwhile.
      }
    }
  }
  for (const hierarchy of cgroupHierarchies()) {
    for (const name of safeReaddir(hierarchy)) if (name.startsWith(`${prefix}-n`)) walk(join(hierarchy, name))
  }
  return pids.filter(alive)
}

function removeCgroup(path: string): void {
  for (const entry of safeReaddir(path)) {
    const child = join(path, entry)
    try {
      if (statSync(child).isDirectory()) removeCgroup(child)
    } catch {
      // Removed meanwhile.
    }
  }
  try {
    rmdirSync(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
}

/** The cgroup hierarchies: /sys/fs/cgroup/<controller> on v1 (and unified), /sys/fs/cgroup itself on v2. */
function cgroupHierarchies(): string[] {
  const root = '/sys/fs/cgroup'
  if (existsSync(join(root, 'cgroup.controllers'))) return [root]
  return safeReaddir(root)
    .map((name) => join(root, name))
    .filter((path) => existsSync(join(path, 'cgroup.procs')))
}

function mountsUnder(dir: string): string[] {
  let text = ''
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8')
  } catch {
    return []
  }
  return text
    .split('\n')
    .map((line) => (line.split(' ')[4] ?? '').replace(/\\040/g, ' '))
    .filter((mount) => mount === dir || mount.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length)
}

function allPids(): number[] {
  return safeReaddir('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
}

function safeReaddir(path: string): string[] {
  try {
    return readdirSync(path)
  } catch {
    return []
  }
}
