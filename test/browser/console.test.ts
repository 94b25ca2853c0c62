// The web console in a real browser: Debian's chromium driven by playwright-core, against the
// daemon in-process on the real Docker engine (its own port, MANAGER_INSTANCE and host ports),
// with FORGE_API_TOKEN set. It logs in, watches a plugin crash and come back without a reload,
// stops one from its page, edits a spec (an error at its line, a concurrent change refused, a
// good edit applied), installs from the marketplace, and checks the CSP header and the
// browser's console on every page. Screenshots go to test-results/console-*.png.
// Under CI=true a missing chromium or Docker engine fails; it never skips. Everything it
// creates (containers of its installation, the spec folder) is removed, pass or fail.
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { chromium, type Browser, type BrowserContext, type Page, type Response as PageResponse } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { loadConfig, packageRoot } from '../../src/config.js'
import { silentLogger } from '../../src/logger.js'
import { startDaemon, type Daemon } from '../../src/main.js'
import { eventually } from '../helpers/databases.js'
import { buildTestImages, docker, execFileAsync, probeEngine, requireEngineInCi } from '../helpers/docker.js'

const CHROMIUM = '/usr/bin/chromium'
const INSTANCE = 'console-browser'
const TOKEN = 'console-browser-test-token-0123456789'
const SHOTS = path.join(packageRoot(), 'test-results')
const engine = await probeEngine()
const haveChromium = existsSync(CHROMIUM)
requireEngineInCi(engine)

test.runIf(process.env.CI === 'true')('chromium is installed in CI', () => {
  expect(haveChromium, `${CHROMIUM} is required in CI (.ci/run installs Debian's chromium)`).toBe(true)
})

/** Every container of this test's installation, and the marketplace plugin's name should one be left from an earlier run. */
async function removeOurContainers(): Promise<void> {
  const ours = (await docker('ps', '-aq', '--filter', `label=io.flowforge.instance=${INSTANCE}`)).split('\n').filter(Boolean)
  if (ours.length > 0) await docker('rm', '-f', '-v', ...ours)
}

const WEB_SPEC = {
  apiVersion: 'flowforge.io/v1',
  kind: 'Plugin',
  metadata: { name: 'cb-web', labels: { team: 'web' } },
  spec: {
    manifest: { name: 'Browser test web', version: '1.0.0', image: 'flowforge-test/http:1', imagePullPolicy: 'Never', port: 8080, healthCheck: { path: '/health', intervalSeconds: 2 } },
    environment: { GREETING: 'hello', API_TOKEN: 'not-for-your-eyes' },
  },
}

/** Prints a line to stdout and one to stderr, then idles: something for the log tail. */
const ECHO_SPEC = {
  apiVersion: 'flowforge.io/v1',
  kind: 'Plugin',
  metadata: { name: 'cb-echo' },
  spec: { manifest: { name: 'Browser test echo', version: '1.0.0', image: 'flowforge-test/echo:1', imagePullPolicy: 'Never', port: 8080 } },
}

/** Runs in the page (a function, not a string: the console's CSP allows no eval). */
function rowPhaseIs(phase: string): boolean {
  const page = globalThis as unknown as { document: { querySelector(selector: string): { textContent: string | null } | null } }
  return page.document.querySelector('tr[data-plugin="cb-web"] td.phase')?.textContent === phase
}

const FILE_SPEC = `apiVersion: flowforge.io/v1
kind: Plugin
metadata:
  name: cb-file
spec:
  state: stopped
  manifest:
    name: Declared by a file
    version: 1.0.0
    image: flowforge-test/http:1
    imagePullPolicy: Never
    port: 8080
`

describe.skipIf(!engine.reachable || !haveChromium).sequential('the web console in chromium', () => {
  let daemon: Daemon
  let specsDir: string
  let base: string
  let browser: Browser
  let context: BrowserContext
  let page: Page
  const consoleErrors: string[] = []
  const visited = new Set<string>()

  const api = async (method: string, route: string, body?: unknown, headers: Record<string, string> = {}) => {
    const response = await fetch(`${base}${route}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    })
    return { status: response.status, body: (await response.json().catch(() => undefined)) as Record<string, any> }
  }
  const plugin = async (name: string) => (await api('GET', `/api/v1/plugins/${name}`)).body
  /** The window as a person sees it (docs/ shows three of these); `full` adds the whole page beside it. */
  const shot = async (name: string, full = false) => {
    await page.screenshot({ path: path.join(SHOTS, `console-${name}.png`) })
    if (full) await page.screenshot({ path: path.join(SHOTS, `console-${name}-full.png`), fullPage: true })
  }
  /** Opens a console page, checking the answer carries the console's policy. */
  const open = async (route: string): Promise<PageResponse> => {
    const response = await page.goto(`${base}${route}`, { waitUntil: 'load' })
    expect(response, route).not.toBeNull()
    const policy = response!.headers()['content-security-policy'] ?? ''
    expect(policy, `the CSP of ${route}`).toContain("script-src 'self'")
    expect(policy).not.toContain('unsafe-inline')
    expect(policy).toContain("frame-ancestors 'none'")
    visited.add(new URL(page.url()).pathname)
    return response!
  }

  beforeAll(async () => {
    await buildTestImages()
    await execFileAsync('bash', ['examples/build-image.sh'])
    await removeOurContainers()
    await mkdir(SHOTS, { recursive: true })
    specsDir = await mkdtemp(path.join(tmpdir(), 'ff-console-specs-'))
    await writeFile(path.join(specsDir, 'cb-file.yaml'), FILE_SPEC)
    const config = loadConfig({
      PORT: '0',
      FORGE_API_TOKEN: TOKEN,
      API_BIND_ADDRESS: '127.0.0.1',
      SPECS_DIR: specsDir,
      CATALOG_DIR: path.join(packageRoot(), 'catalog'),
      MANAGER_INSTANCE: INSTANCE,
      HOST_PORT_RANGE: '4650-4699',
      STOP_TIMEOUT: '2',
      HEALTH_INTERVAL: '2s',
      USAGE_FLUSH_INTERVAL: '2s',
      SPECS_RESCAN_INTERVAL: '1s',
    })
    daemon = await startDaemon({ ...config, database: { kind: 'embedded', dataDir: 'memory', sqlPort: 0 } }, silentLogger())
    await daemon.ready
    base = `http://127.0.0.1:${daemon.apiAddress.port}`
    expect((await api('POST', '/api/v1/plugins', WEB_SPEC)).status).toBe(201)
    expect((await api('POST', '/api/v1/plugins', ECHO_SPEC)).status).toBe(201)
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // As root chromium needs --no-sandbox; the rest keep it off the (closed) network.
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run', '--disable-default-apps'],
    })
    context = await browser.newContext({ viewport: { width: 1280, height: 860 } })
    page = await context.newPage()
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(`${page.url()}: ${message.text()}`)
    })
    page.on('pageerror', (error) => consoleErrors.push(`${page.url()}: ${error.message}`))
  }, 240_000)

  afterAll(async () => {
    await browser?.close().catch(() => undefined)
    await daemon?.stop().catch(() => undefined)
    await removeOurContainers().catch(() => undefined)
    if (specsDir) await rm(specsDir, { recursive: true, force: true })
  }, 120_000)

  test('nothing but the login page is shown until the token is given; then the dashboard', async () => {
    const response = await open('/')
    expect(new URL(page.url()).pathname).toBe('/login')
    expect(response.status()).toBe(200)
    await shot('login')
    await page.fill('#token', 'not-the-token-at-all')
    await page.click('#login-form button[type=submit]')
    await expect.poll(() => page.locator('#login-error').textContent()).toContain('not the API token')
    await page.fill('#token', TOKEN)
    await Promise.all([page.waitForURL(`${base}/`), page.click('#login-form button[type=submit]')])
    const cookies = await context.cookies()
    const session = cookies.find((cookie) => cookie.name === 'flowforge_session')
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict' })
    // The page itself never holds the token.
    expect(await page.content()).not.toContain(TOKEN)
  })

  test('the dashboard shows the running plugin', async () => {
    await open('/')
    const phase = page.locator('tr[data-plugin="cb-web"] td.phase')
    await expect.poll(() => phase.textContent(), { timeout: 30_000 }).toBe('running')
    await expect.poll(() => page.locator('#phase-counts').textContent()).toContain('running')
    await expect.poll(() => page.locator('tr[data-plugin="cb-web"] td.health').textContent(), { timeout: 20_000 }).toBe('healthy')
    // CPU and memory come with the resource sampler (HEALTH_INTERVAL, 2 s here); the page shows the latest.
    const cpu = page.locator('tr[data-plugin="cb-web"] td.num').nth(3)
    await expect
      .poll(async () => {
        await page.reload()
        return cpu.textContent()
      }, { timeout: 30_000, interval: 1_000 })
      .toContain('%')
    await shot('dashboard')
  })

  test('docker kill turns the row to error within 2 s and back to running after the restart, without a reload', async () => {
    await open('/')
    // This file is compiled without the DOM's types: the page's globals through globalThis.
    await page.evaluate(() => ((globalThis as unknown as Record<string, unknown>).notReloaded = true))
    const phase = page.locator('tr[data-plugin="cb-web"] td.phase')
    await expect.poll(() => phase.textContent()).toBe('running')
    const containerId = (await plugin('cb-web')).status.containerId as string
    await docker('kill', containerId)
    const killedAt = Date.now()
    await page.waitForFunction(rowPhaseIs, 'error', { timeout: 2_000, polling: 20 })
    const shownAfterMs = Date.now() - killedAt
    expect(shownAfterMs).toBeLessThan(2_000)
    await page.waitForFunction(rowPhaseIs, 'running', { timeout: 40_000, polling: 100 })
    expect(await page.evaluate(() => (globalThis as unknown as Record<string, unknown>).notReloaded)).toBe(true)
    expect(Number(await page.locator('tr[data-plugin="cb-web"] td.num').nth(1).textContent())).toBeGreaterThanOrEqual(1)
    process.stderr.write(`console: docker kill shown as error after ${shownAfterMs} ms\n`)
  })

  test('Stop on the plugin page stops the container', async () => {
    await open('/plugin/cb-web')
    await expect.poll(() => page.locator('#status-phase .badge').textContent(), { timeout: 30_000 }).toBe('running')
    await expect.poll(() => page.locator('#log-state').textContent(), { timeout: 10_000 }).toBe('following')
    await shot('plugin', true)
    await page.click('#actions button[data-action="stop"]')
    await expect.poll(() => page.locator('#status-phase .badge').textContent(), { timeout: 30_000 }).toBe('stopped')
    const containerId = (await plugin('cb-web')).status.containerId as string
    expect(await docker('inspect', '-f', '{{.State.Status}}', containerId)).toBe('exited')
    await page.click('#actions button[data-action="start"]')
    await expect.poll(() => page.locator('#status-phase .badge').textContent(), { timeout: 30_000 }).toBe('running')
  })

  test('a spec with an error shows it at its line and writes nothing', async () => {
    await open('/plugin/cb-web')
    const before = await plugin('cb-web')
    const text = await page.inputValue('#spec-editor')
    const lines = text.split('\n')
    const portLine = lines.findIndex((line) => /^\s+port: 8080$/.test(line))
    expect(portLine).toBeGreaterThan(0)
    lines[portLine] = lines[portLine]!.replace('8080', 'eighty')
    await page.fill('#spec-editor', lines.join('\n'))
    await page.click('#spec-check')
    const error = page.locator(`#edit-errors li[data-line="${portLine + 1}"]`)
    await expect.poll(() => error.textContent()).toContain('spec.manifest.port')
    expect(await page.locator('#editor-gutter .error-line').textContent()).toBe(String(portLine + 1))
    expect(await page.isDisabled('#spec-apply')).toBe(true)
    await shot('plugin-edit-error')
    const after = await plugin('cb-web')
    expect(after.metadata.generation).toBe(before.metadata.generation)
    expect(after.spec.manifest.port).toBe(8080)
    // The secret reads *** in the editor, as in the API.
    expect(text).toContain('API_TOKEN: "***"')
    expect(await page.content()).not.toContain('not-for-your-eyes')
  })

  test('an edit is refused when someone changed the spec meanwhile, and applied with If-Match otherwise', async () => {
    await open('/plugin/cb-web')
    const edited = (await page.inputValue('#spec-editor')).replace('team: web', 'team: console')
    await page.fill('#spec-editor', edited)
    await page.click('#spec-check')
    await expect.poll(() => page.locator('#spec-diff').textContent()).toContain('+    team: console')
    // Someone else changes the spec while the editor is open.
    const patched = await api('PATCH', '/api/v1/plugins/cb-web', { metadata: { labels: { team: 'api' } } }, { 'content-type': 'application/merge-patch+json' })
    expect(patched.status).toBe(200)
    await page.click('#spec-apply')
    await expect.poll(() => page.locator('#apply-result').textContent()).toContain('Refused')
    expect((await plugin('cb-web')).metadata.labels).toEqual({ team: 'api' })
    await shot('plugin-edit-refused')

    await open('/plugin/cb-web')
    await page.fill('#spec-editor', (await page.inputValue('#spec-editor')).replace('team: api', 'team: console'))
    await page.click('#spec-check')
    await expect.poll(() => page.locator('#spec-diff').textContent()).toContain('+    team: console')
    await page.click('#spec-apply')
    await expect.poll(() => page.locator('#apply-result').textContent()).toContain('Applied')
    const written = await plugin('cb-web')
    expect(written.metadata.labels).toEqual({ team: 'console' })
    // The secret kept its stored value (*** sent back): the container still gets it.
    await eventually(async () => ((await plugin('cb-web')).status.phase === 'running' ? true : undefined), 30_000, 'cb-web running')
    expect(await docker('inspect', '-f', '{{range .Config.Env}}{{println .}}{{end}}', (await plugin('cb-web')).status.containerId)).toContain('API_TOKEN=not-for-your-eyes')
  })

  test('the log tail follows the container, pauses and follows again', async () => {
    await open('/plugin/cb-echo')
    await expect.poll(() => page.locator('#log-lines').textContent(), { timeout: 30_000 }).toContain('forgehook echo: hello on stdout')
    expect(await page.locator('#log-lines').textContent()).toContain('forgehook echo: hello on stderr')
    await page.click('#log-pause')
    expect(await page.locator('#log-state').textContent()).toBe('paused')
    await page.click('#log-clear')
    await page.click('#log-follow')
    await expect.poll(() => page.locator('#log-lines').textContent(), { timeout: 10_000 }).toContain('forgehook echo: hello on stdout')
  })

  test('a plugin declared by a spec file is shown as owned by it and not editable', async () => {
    await eventually(async () => ((await api('GET', '/api/v1/plugins/cb-file')).status === 200 ? true : undefined), 20_000, 'cb-file declared')
    await open('/plugin/cb-file')
    expect(await page.locator('#file-owned').textContent()).toContain(path.join(specsDir, 'cb-file.yaml'))
    expect(await page.locator('#spec-editor').count()).toBe(0)
    expect(await page.isDisabled('#actions button[data-action="delete"]')).toBe(true)
    await open('/specs')
    expect(await page.locator('tr[data-spec-file="cb-file.yaml"]').textContent()).toContain('ok')
    await shot('specs')
  })

  test('Install from the marketplace lands on the plugin page, which sees it converge to running', async () => {
    await open('/marketplace')
    const card = page.locator('article[data-forgehook="hello-greeter"]')
    await card.locator('summary').click()
    await card.locator('input[data-key="GREETER_API_KEY"]').fill('marketplace-secret-value')
    expect(await card.locator('input[data-key="GREETER_API_KEY"]').getAttribute('type')).toBe('password')
    await shot('marketplace')
    await Promise.all([page.waitForURL(`${base}/plugin/hello-greeter`), card.locator('button[type=submit]').click()])
    visited.add('/plugin/hello-greeter')
    await expect.poll(() => page.locator('#status-phase .badge').textContent(), { timeout: 40_000 }).toBe('running')
    const installed = await plugin('hello-greeter')
    expect(installed.metadata.source).toBe('api')
    expect(installed.spec.environment).toEqual({ LOG_LEVEL: 'info', GREETER_API_KEY: '***' })
    expect(installed.spec.config).toEqual({ greeting: 'hello', repeat: 1 })
    await open('/marketplace')
    expect(await page.locator('article[data-forgehook="hello-greeter"] .installed').textContent()).toContain('Installed')
  })

  test('the events page lists the audit trail with its filters', async () => {
    await open('/events?plugin=cb-web')
    await expect.poll(() => page.locator('#events').textContent()).toContain('plugin:crashed')
    await shot('events')
    await open('/events?type=plugin:installed')
    expect(await page.locator('#events tbody tr').count()).toBeGreaterThanOrEqual(2)
  })

  test('every page carried the policy, and the browser logged no error on any of them', () => {
    expect([...visited].sort()).toEqual(expect.arrayContaining(['/', '/login', '/marketplace', '/specs', '/events', '/plugin/cb-web', '/plugin/cb-echo', '/plugin/cb-file', '/plugin/hello-greeter']))
    expect(consoleErrors).toEqual([])
  })

  test('logout ends the session', async () => {
    await open('/')
    await Promise.all([page.waitForURL(`${base}/login`), page.click('form.logout button')])
    await open('/events')
    expect(new URL(page.url()).pathname).toBe('/login')
  })
})
