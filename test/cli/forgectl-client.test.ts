// forgectl's client commands against a running daemon, as an operator uses them: apply, get,
// describe, diff, delete, start/stop/restart, schema. Streams (logs, events, --watch) and
// errors (usage, auth, unreachable) have their own files.
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { parse as parseYaml } from 'yaml'
import { pluginJsonSchema } from '../../src/spec/plugin-spec.js'
import {
  declarePlugin,
  expectNoStackTrace,
  IMAGE,
  OTHER_IMAGE,
  fetchPlugin,
  pluginYaml,
  runForgectl,
  startTestDaemon,
  waitForPhase,
  writeSpecFile,
  type RunResult,
  type TestDaemon,
} from './forgectl-harness.js'

let server: TestDaemon
let env: Record<string, string>

beforeAll(async () => {
  server = await startTestDaemon()
  env = { FORGE_URL: server.url }
})
afterAll(async () => {
  await server?.stop()
})

async function forgectl(...args: string[]): Promise<RunResult> {
  const result = await runForgectl(args, env)
  expectNoStackTrace(result)
  return result
}

/** The column each header starts at, and the cells of a row cut at those columns. */
function cellsAt(header: string, line: string): Record<string, string> {
  const starts = [...header.matchAll(/\S+/g)].map((match) => ({ name: match[0], start: match.index }))
  return Object.fromEntries(starts.map(({ name, start }, index) => [name, line.slice(start, starts[index + 1]?.start ?? line.length).trim()]))
}

describe('forgectl apply', () => {
  test('creates the plugins of a file, then reports them unchanged, then configured when one changed', async () => {
    const file = await writeSpecFile(server.workDir, 'pair.yaml', pluginYaml('apply-one', { config: { rounds: 1 } }), pluginYaml('apply-two'))

    const first = await forgectl('apply', '-f', file)
    expect(first.code).toBe(0)
    expect(first.stdout).toBe('plugin/apply-one created\nplugin/apply-two created\n')
    expect((await fetchPlugin(server.url, 'apply-one'))?.spec.config).toEqual({ rounds: 1 })

    const again = await forgectl('apply', '-f', file)
    expect(again.stdout).toBe('plugin/apply-one unchanged\nplugin/apply-two unchanged\n')

    await writeSpecFile(server.workDir, 'pair.yaml', pluginYaml('apply-one', { config: { rounds: 2 } }), pluginYaml('apply-two'))
    const changed = await forgectl('apply', '-f', file)
    expect(changed.code).toBe(0)
    expect(changed.stdout).toBe('plugin/apply-one configured\nplugin/apply-two unchanged\n')
    expect((await fetchPlugin(server.url, 'apply-one'))?.spec.config).toEqual({ rounds: 2 })
  })

  test('applies every *.yaml and *.yml of a folder, not its subfolders nor other files', async () => {
    const dir = path.join(server.workDir, 'folder')
    await mkdir(path.join(dir, 'nested'), { recursive: true })
    await writeSpecFile(dir, 'a.yaml', pluginYaml('dir-a'))
    await writeSpecFile(dir, 'b.yml', pluginYaml('dir-b'), pluginYaml('dir-c', { state: 'stopped' }))
    await writeSpecFile(dir, 'notes.txt', pluginYaml('dir-ignored-text'))
    await writeSpecFile(path.join(dir, 'nested'), 'deep.yaml', pluginYaml('dir-ignored-nested'))

    const result = await forgectl('apply', '-f', dir)
    expect(result.code).toBe(0)
    expect(result.stdout).toBe('plugin/dir-a created\nplugin/dir-b created\nplugin/dir-c created\n')
    expect(await fetchPlugin(server.url, 'dir-ignored-text')).toBeUndefined()
    expect(await fetchPlugin(server.url, 'dir-ignored-nested')).toBeUndefined()
    expect((await forgectl('apply', '-f', dir)).stdout).toBe('plugin/dir-a unchanged\nplugin/dir-b unchanged\nplugin/dir-c unchanged\n')
  })

  test('an invalid file is reported at file:line:column and nothing is applied, not even the valid documents', async () => {
    const valid = await writeSpecFile(server.workDir, 'valid.yaml', pluginYaml('invalid-neighbour'))
    const invalid = await writeSpecFile(
      server.workDir,
      'invalid.yaml',
      pluginYaml('invalid-first-valid'),
      ['apiVersion: flowforge.io/v1', 'kind: Plugin', 'metadata:', '  name: invalid-port', 'spec:', '  manifest:', '    image: flowforge/test:1', '    port: 0', ''].join('\n'),
    )
    const result = await forgectl('apply', '-f', valid, '-f', invalid)
    expect(result.code).toBe(1)
    expect(result.stdout).toBe('')
    const firstDocumentLines = pluginYaml('invalid-first-valid').split('\n').length - 1
    // The second document starts after the first one and its --- line; port is its 8th line.
    expect(result.stderr).toContain(`${invalid}:${firstDocumentLines + 1 + 8}:5: spec.manifest.port: Too small`)
    expect(result.stderr).toContain('forgectl: 1 problem in the spec files; nothing was applied')
    for (const name of ['invalid-neighbour', 'invalid-first-valid', 'invalid-port']) expect(await fetchPlugin(server.url, name)).toBeUndefined()
  })

  test('a missing file is an error naming it', async () => {
    const result = await forgectl('apply', '-f', path.join(server.workDir, 'nope.yaml'))
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('nope.yaml: cannot read: no such file or directory')
  })

  test('--wait exits 0 once every plugin converged', async () => {
    const file = await writeSpecFile(server.workDir, 'wait.yaml', pluginYaml('wait-run'), pluginYaml('wait-stop', { state: 'stopped' }))
    const result = await forgectl('apply', '-f', file, '--wait', '--timeout', '30s')
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/^plugin\/wait-run\s+running\s+\S+\s+converged$/m)
    expect(result.stdout).toMatch(/^plugin\/wait-stop\s+stopped\s+\S+\s+converged$/m)
    // Not a terminal: no cursor movement, and a line only when a plugin's state changed.
    expect(result.stdout).not.toContain('\x1b[')
    expect(result.stdout.match(/^plugin\/wait-run .*converged$/gm)).toHaveLength(1)
  })

  test('--wait exits 1 naming a plugin that ends in phase error (an image the engine does not have)', async () => {
    const file = await writeSpecFile(server.workDir, 'wait-error.yaml', pluginYaml('wait-ok'), pluginYaml('wait-missing-image', { image: 'flowforge/missing:1' }))
    const result = await forgectl('apply', '-f', file, '--wait', '--timeout', '30s')
    expect(result.code).toBe(1)
    expect(result.stdout).toMatch(/^plugin\/wait-ok\s+running\s+\S+\s+converged$/m)
    expect(result.stderr).toMatch(/^forgectl: plugin\/wait-missing-image failed: image not found: flowforge\/missing:1/m)
    expect(result.stderr).not.toContain('wait-ok')
  })

  test('--wait exits 1 on timeout, naming the plugin that did not converge', async () => {
    server.runtime.setReachable(false)
    try {
      const file = await writeSpecFile(server.workDir, 'wait-timeout.yaml', pluginYaml('wait-slow'))
      const result = await forgectl('apply', '-f', file, '--wait', '--timeout', '1500ms')
      expect(result.code).toBe(1)
      expect(result.stdout).toContain('plugin/wait-slow created')
      expect(result.stderr).toMatch(/^forgectl: plugin\/wait-slow did not converge within 1\.5 s: the controller has not acted on generation 1 yet/m)
    } finally {
      server.runtime.setReachable(true)
    }
    await waitForPhase(server.url, 'wait-slow', 'running', 20_000)
  })

  test('a document the API refuses is reported with its field paths, and the others are still applied', async () => {
    // Valid locally, refused by the API: the secret placeholder has no stored value to stand for.
    const file = await writeSpecFile(server.workDir, 'refused.yaml', pluginYaml('refused-secret', { environment: { API_TOKEN: '***' } }), pluginYaml('refused-neighbour'))
    const result = await forgectl('apply', '-f', file)
    expect(result.code).toBe(1)
    expect(result.stdout).toBe('plugin/refused-neighbour created\n')
    expect(result.stderr.trim()).toMatch(/^forgectl: plugin\/refused-secret \(.*refused\.yaml\): the plugin document is not valid: spec\.environment\.API_TOKEN: /)
  })
})

describe('forgectl get', () => {
  beforeAll(async () => {
    await declarePlugin(server.url, 'get-alpha', { labels: { team: 'a' } })
    await declarePlugin(server.url, 'get-beta', { state: 'stopped', image: 'flowforge/test:2' })
  })

  test('prints an aligned table with a header', async () => {
    const result = await forgectl('get')
    expect(result.code).toBe(0)
    const [header, ...rows] = result.stdout.trimEnd().split('\n')
    expect(header).toMatch(/^NAME\s+STATE\s+PHASE\s+READY\s+HEALTH\s+PORT\s+RESTARTS\s+AGE$/)
    const alpha = cellsAt(header!, rows.find((row) => row.startsWith('get-alpha '))!)
    expect(alpha).toMatchObject({ NAME: 'get-alpha', STATE: 'running', PHASE: 'running', READY: '1/1', RESTARTS: '0' })
    expect(alpha.PORT).toMatch(/^\d+$/)
    expect(alpha.AGE).toMatch(/^\d+[smhd]$/)
    // Stopped: nothing should run, nothing does.
    expect(cellsAt(header!, rows.find((row) => row.startsWith('get-beta '))!)).toMatchObject({ STATE: 'stopped', PHASE: 'stopped', READY: '0/0' })
    // Aligned: every row's cells start where the header's do.
    const phaseColumn = header!.indexOf('PHASE')
    for (const row of rows) expect(row.slice(phaseColumn - 1, phaseColumn)).toBe(' ')
  })

  test('wide adds the image, a 12-character container id, the source and the error', async () => {
    const result = await forgectl('get', 'get-beta', '-o', 'wide')
    expect(result.code).toBe(0)
    const [header, row] = result.stdout.trimEnd().split('\n')
    expect(header).toMatch(/^NAME\s+STATE\s+PHASE\s+READY\s+HEALTH\s+PORT\s+RESTARTS\s+AGE\s+IMAGE\s+CONTAINER\s+SOURCE\s+ERROR$/)
    const plugin = await fetchPlugin(server.url, 'get-beta')
    expect(cellsAt(header!, row!)).toMatchObject({ NAME: 'get-beta', IMAGE: 'flowforge/test:2', CONTAINER: plugin!.status.containerId.slice(0, 12), SOURCE: 'api', ERROR: '<none>' })
  })

  test('READY is the running/desired replicas the swarm runtime reports, and 0/1 for a plugin that should run but does not', async () => {
    const plugin = await declarePlugin(server.url, 'get-replicated')
    await server.daemon.store.writeStatus(plugin.metadata.uid, { replicasDesired: 3, replicasRunning: 2 })
    const [header, row] = (await forgectl('get', 'get-replicated')).stdout.trimEnd().split('\n')
    expect(cellsAt(header!, row!)).toMatchObject({ NAME: 'get-replicated', READY: '2/3' })

    await writeSpecFile(server.workDir, 'get-broken.yaml', pluginYaml('get-broken', { image: 'flowforge/missing:3' }))
    await forgectl('apply', '-f', path.join(server.workDir, 'get-broken.yaml'))
    await waitForPhase(server.url, 'get-broken', 'error')
    const [brokenHeader, brokenRow] = (await forgectl('get', 'get-broken')).stdout.trimEnd().split('\n')
    expect(cellsAt(brokenHeader!, brokenRow!)).toMatchObject({ PHASE: 'error', READY: '0/1' })
  })

  test('-o json prints the API objects: one plugin as itself, a list as kind List', async () => {
    const one = await forgectl('get', 'get-alpha', '-o', 'json')
    expect(one.code).toBe(0)
    expect(JSON.parse(one.stdout)).toEqual(await fetchPlugin(server.url, 'get-alpha'))
    const list = JSON.parse((await forgectl('get', '-o', 'json')).stdout) as { kind: string; items: { metadata: { name: string } }[] }
    expect(list.kind).toBe('List')
    expect(list.items.map((item) => item.metadata.name)).toEqual(expect.arrayContaining(['get-alpha', 'get-beta']))
  })

  test('-o yaml prints the same objects as YAML', async () => {
    const one = parseYaml((await forgectl('get', 'get-alpha', '-o', 'yaml')).stdout) as Record<string, any>
    expect(one.metadata).toMatchObject({ name: 'get-alpha', labels: { team: 'a' } })
    expect(one.status.phase).toBe('running')
    const list = parseYaml((await forgectl('get', '-o', 'yaml')).stdout) as Record<string, any>
    expect(list).toMatchObject({ apiVersion: 'flowforge.io/v1', kind: 'List' })
  })

  test('a NAME shows only that plugin; plugin/NAME (as apply prints it) works too', async () => {
    const result = await forgectl('get', 'plugin/get-alpha')
    expect(result.code).toBe(0)
    expect(result.stdout.trimEnd().split('\n')).toHaveLength(2)
    expect(result.stdout).toMatch(/^get-alpha\s+running\s+running/m)
  })

  test('an unknown NAME exits 1 with one line', async () => {
    const result = await forgectl('get', 'no-such-plugin')
    expect(result.code).toBe(1)
    expect(result.stdout).toBe('')
    expect(result.stderr).toBe('forgectl: plugin "no-such-plugin" not found\n')
  })
})

describe('forgectl describe', () => {
  test('shows the spec with secrets hidden, the status, the drift and the events', async () => {
    await declarePlugin(server.url, 'describe-me', { labels: { team: 'ops' }, config: { rounds: 12 }, environment: { LOG_LEVEL: 'info', API_TOKEN: 's3cr3t-value' } })
    const result = await forgectl('describe', 'describe-me')
    expect(result.code).toBe(0)
    const text = result.stdout
    expect(text).toMatch(/^Name:\s+describe-me$/m)
    expect(text).toMatch(/^Labels:\s+team=ops$/m)
    expect(text).toMatch(/^ {2}Image:\s+flowforge\/test:1$/m)
    expect(text).toMatch(/^ {2}Host Port:\s+requested <none> \(one from the range\), assigned \d+$/m)
    expect(text).toMatch(/^ {4}API_TOKEN:\s+\*\*\*$/m)
    expect(text).toMatch(/^ {4}LOG_LEVEL:\s+info$/m)
    expect(text).not.toContain('s3cr3t-value')
    expect(text).toMatch(/^ {4}rounds: 12$/m)
    expect(text).toMatch(/^ {2}Phase:\s+running$/m)
    expect(text).toMatch(/^ {2}Container:\s+forgehook-describe-me \([0-9a-f]{12}\)$/m)
    expect(text).toMatch(/^Drift:\n {2}Desired:\s+state running, generation 1\n {2}Observed:\s+phase running, generation 1\n {2}Result:\s+converged$/m)
    expect(text).toMatch(/^ {2}AGE\s+TYPE\s+DATA$/m)
    expect(text).toMatch(/^ {2}\d+s\s+plugin:installed\s+image=flowforge\/test:1 hostPort=\d+$/m)
  })

  test('shows replicas and placement, the ready count and, when there are any, the Swarm tasks', async () => {
    const plugin = await declarePlugin(server.url, 'describe-tasks')
    const single = (await forgectl('describe', 'describe-tasks')).stdout
    expect(single).toMatch(/^ {2}Replicas:\s+1$/m)
    expect(single).toMatch(/^ {2}Placement:\s+<none>$/m)
    expect(single).toMatch(/^ {2}Ready:\s+1\/1$/m)
    expect(single).not.toMatch(/^Tasks:$/m)

    const { store } = server.daemon
    await store.writeStatus(plugin.metadata.uid, { replicasDesired: 2, replicasRunning: 1 })
    const updatedAt = new Date()
    const task = { pluginId: plugin.metadata.uid, nodeId: 'n1', nodeName: 'node-1', nodeState: 'ready', nodeAddress: '10.0.0.1', state: 'running', desiredState: 'running', containerId: '0123456789abcdef0123', error: null, message: 'started', health: null, hostPort: 4190, image: IMAGE, createdAt: null, updatedAt } as const
    await store.tasks.replaceTasks(plugin.metadata.uid, [
      { ...task, taskId: 'task-a', slot: 1 },
      { ...task, taskId: 'task-b', slot: 2, nodeName: 'node-2', nodeState: 'down', state: 'failed', desiredState: 'shutdown', containerId: null, error: 'node is down', hostPort: null },
    ])
    const text = (await forgectl('describe', 'describe-tasks')).stdout
    expect(text).toMatch(/^ {2}Ready:\s+1\/2 tasks running$/m)
    expect(text).toMatch(/^Tasks:\n {2}SLOT\s+NODE\s+STATE\s+CONTAINER\s+ERROR\n {2}1\s+node-1\s+running\s+0123456789ab\s+<none>\n {2}2\s+node-2 \(down\)\s+failed \(desired shutdown\)\s+<none>\s+node is down$/m)
  })

  test('shows an error as the drift of a plugin that cannot run', async () => {
    await writeSpecFile(server.workDir, 'describe-error.yaml', pluginYaml('describe-broken', { image: 'flowforge/missing:2' }))
    await forgectl('apply', '-f', path.join(server.workDir, 'describe-error.yaml'))
    await waitForPhase(server.url, 'describe-broken', 'error')
    const result = await forgectl('describe', 'describe-broken')
    expect(result.stdout).toMatch(/^ {2}Result:\s+error: image not found: flowforge\/missing:2/m)
    expect(result.stdout).toMatch(/plugin:error\s+error=image not found/)
  })
})

describe('forgectl delete, start, stop, restart', () => {
  test('delete --wait returns once the plugin is gone', async () => {
    await declarePlugin(server.url, 'delete-me')
    const result = await forgectl('delete', 'delete-me', '--wait', '--timeout', '30s')
    expect(result.code).toBe(0)
    expect(result.stdout).toBe('plugin/delete-me deleted\n')
    expect(await fetchPlugin(server.url, 'delete-me')).toBeUndefined()
  })

  test('delete without --wait only asks; an unknown plugin exits 1', async () => {
    await declarePlugin(server.url, 'delete-later')
    const result = await forgectl('delete', 'delete-later')
    expect(result.code).toBe(0)
    expect(result.stdout).toBe('plugin/delete-later deletion requested\n')
    const unknown = await forgectl('delete', 'delete-never-was')
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toBe('forgectl: plugin "delete-never-was" not found\n')
  })

  test('stop and start change the desired state; restart restarts the container once', async () => {
    await declarePlugin(server.url, 'cycle')
    const stop = await forgectl('stop', 'cycle')
    expect(stop).toMatchObject({ code: 0, stdout: 'plugin/cycle stop requested\n' })
    await waitForPhase(server.url, 'cycle', 'stopped')

    const restartStopped = await forgectl('restart', 'cycle')
    expect(restartStopped.code).toBe(1)
    expect(restartStopped.stderr).toBe('forgectl: plugin "cycle" is stopped: start it instead of restarting it\n')

    expect((await forgectl('start', 'cycle')).stdout).toBe('plugin/cycle start requested\n')
    await waitForPhase(server.url, 'cycle', 'running')

    expect((await forgectl('restart', 'cycle')).stdout).toBe('plugin/cycle restart requested\n')
    await expect.poll(async () => (await forgectl('events', 'cycle')).stdout, { timeout: 10_000 }).toMatch(/plugin:restarted/)
  })
})

describe('forgectl diff', () => {
  test('exits 0 and prints nothing when the daemon has what the file declares (a hidden secret is not a change)', async () => {
    const file = await writeSpecFile(server.workDir, 'diff-same.yaml', pluginYaml('diff-same', { config: { rounds: 3 }, environment: { API_TOKEN: 'real-secret', MODE: 'fast' } }))
    expect((await forgectl('apply', '-f', file)).code).toBe(0)
    const result = await forgectl('diff', '-f', file)
    expect(result.code).toBe(0)
    expect(result.stdout).toBe('')
    expect(result.stderr).toBe('note: plugin/diff-same: the daemon hides the values of API_TOKEN; compared by presence only\n')
  })

  test('exits 1 with a readable unified diff when the file changes the plugin', async () => {
    const file = await writeSpecFile(server.workDir, 'diff-change.yaml', pluginYaml('diff-change', { config: { rounds: 3 }, environment: { API_TOKEN: 'old-secret' } }))
    await forgectl('apply', '-f', file)
    await writeSpecFile(server.workDir, 'diff-change.yaml', pluginYaml('diff-change', { config: { rounds: 4 }, environment: { API_TOKEN: 'new-secret' } }), pluginYaml('diff-new'))

    const result = await forgectl('diff', '-f', file)
    expect(result.code).toBe(1)
    expect(result.stdout).toContain(`--- plugin/diff-change (live)\n+++ plugin/diff-change (${file})\n@@ `)
    expect(result.stdout).toContain('-    rounds: 3\n+    rounds: 4\n')
    // The secret's value is hidden on the daemon: not a change, and never printed.
    expect(result.stdout).not.toMatch(/^[-+].*API_TOKEN/m)
    expect(result.stdout).not.toContain('new-secret')
    expect(result.stdout).toContain('--- /dev/null\n+++ plugin/diff-new')
    expect(result.stdout).toMatch(/^\+ {2}name: diff-new$/m)
    expect(result.stderr).toContain('changes: plugin/diff-change would be configured, plugin/diff-new would be created')
    // diff changes nothing.
    expect((await fetchPlugin(server.url, 'diff-change'))?.spec.config).toEqual({ rounds: 3 })
    expect(await fetchPlugin(server.url, 'diff-new')).toBeUndefined()
  })

  test('an invalid file is an error, told apart from changes', async () => {
    const file = await writeSpecFile(server.workDir, 'diff-invalid.yaml', 'apiVersion: flowforge.io/v1\nkind: Plugin\nmetadata: { name: Bad_Name }\nspec: {}\n')
    const result = await forgectl('diff', '-f', file)
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(`${file}:3:`)
    expect(result.stderr).toContain('nothing was compared')
    expect(result.stderr).not.toContain('changes:')
  })
})

describe('forgectl schema', () => {
  test('prints the JSON Schema of spec files without a daemon', async () => {
    const result = await runForgectl(['schema'], { FORGE_URL: 'http://127.0.0.1:9' })
    expect(result.code).toBe(0)
    expect(JSON.parse(result.stdout)).toEqual(pluginJsonSchema())
  })
})

test('a file forgectl cannot parse as YAML is reported at its position', async () => {
  const file = path.join(server.workDir, 'broken-yaml.yaml')
  await writeFile(file, 'apiVersion: flowforge.io/v1\nkind: [Plugin\n')
  const result = await forgectl('apply', '-f', file)
  expect(result.code).toBe(1)
  expect(result.stderr).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:\\d+:\\d+: `, 'm'))
})

describe('forgectl rollout and delete --purge', () => {
  test('history lists the revisions newest first; undo writes the previous spec back; retry says when there is nothing to retry', async () => {
    await declarePlugin(server.url, 'roll')
    await writeSpecFile(server.workDir, 'roll.yaml', pluginYaml('roll', { image: OTHER_IMAGE }))
    expect((await forgectl('apply', '-f', path.join(server.workDir, 'roll.yaml'))).stdout).toBe('plugin/roll configured\n')
    const history = await forgectl('rollout', 'history', 'roll')
    expect(history.code).toBe(0)
    const lines = history.stdout.trimEnd().split('\n')
    expect(lines[0]).toMatch(/^REVISION\s+IMAGE\s+STATE\s+SOURCE\s+AGE$/)
    expect(lines.slice(1).map((line) => line.split(/\s{2,}/).slice(0, 4))).toEqual([
      ['2 (current)', OTHER_IMAGE, 'running', 'api'],
      ['1', IMAGE, 'running', 'api'],
    ])
    const undo = await forgectl('rollout', 'undo', 'roll')
    expect(undo.stdout).toBe('plugin/roll rolled back to the previous revision as generation 3\n')
    expect((await fetchPlugin(server.url, 'roll'))?.spec.manifest.image).toBe(IMAGE)
    const retry = await runForgectl(['rollout', 'retry', 'roll'], env)
    expect(retry.code).toBe(1)
    expect(retry.stderr).toContain('no rolled-back update of its current generation')
    const usage = await runForgectl(['rollout', 'again', 'roll'], env)
    expect(usage.code).toBe(2)
  })

  test('delete --purge asks for the named volumes to go too', async () => {
    await declarePlugin(server.url, 'purged')
    const result = await forgectl('delete', 'purged', '--purge')
    expect(result.stdout).toBe('plugin/purged deletion requested (with its volumes)\n')
  })
})
