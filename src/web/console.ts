// The web console: server-rendered pages beside the API, on the daemon's own port. It reads
// the store and the event stream and never talks to Docker; every write its pages make goes
// from the browser to the API's own routes (with the session cookie and the CSRF token), so
// there is one code path per write and the API's If-Match and validation hold as they are.
// Pages: / (dashboard), /plugin/:name, /marketplace, /specs, /events, /login. The fragments
// under /console/fragments/ are parts of those pages, fetched again by their scripts when the
// event stream says something changed; /console/assets/ serves the scripts and styles.
import { Hono, type Context, type MiddlewareHandler } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { deleteCookie, getCookie, setCookie } from 'hono/cookie'
import { html } from 'hono/html'
import type { ApiDependencies } from '../api/deps.js'
import type { BrowserSessionCheck } from '../api/api-authentication.js'
import { originGuard } from '../api/browser-guard.js'
import { ApiError } from '../api/errors.js'
import { InvalidValueError } from '../db/errors.js'
import type { LatestResourceSample, MetricBucket } from '../db/metric-queries.js'
import type { Plugin } from '../db/plugin-store.js'
import { assetRoutes, loadAssets } from './assets.js'
import type { Catalog } from './catalog.js'
import { requireConsoleSession, sessionCheck, setSessionCookie, type ConsoleEnv } from './console-auth.js'
import { ConsoleSessions, LOGIN_COOKIE, LOGIN_TTL_SECONDS, SESSION_COOKIE } from './console-sessions.js'
import { dashboardBody, dashboardFilters, dashboardView, readDashboardFilter } from './dashboard.js'
import { eventQueryOf, eventsBody, eventsFragment, readEventsFilter } from './events-page.js'
import { CONSOLE_HEADERS, page, type Html, type NavItem } from './layout.js'
import { loginBody, safeNext } from './login-page.js'
import { marketplaceBody } from './marketplace.js'
import { pluginPageBody, statusFragment, timelineFragment } from './plugin-page.js'
import { PluginSnapshot, RefreshingValue } from './plugin-snapshot.js'
import { checkSpecEdit, MAX_EDIT_BYTES } from './spec-edit.js'
import { specsBody, specsFragment } from './specs-page.js'

export interface ConsoleDependencies {
  api: ApiDependencies
  /** The newest CPU and memory sample of every plugin since a time (db/metric-queries.ts). */
  latestSamples(since: Date): Promise<Map<string, LatestResourceSample>>
  /** A plugin's plugin_metrics in buckets (db/metric-queries.ts). */
  metricBuckets(pluginId: string, since: Date, bucketSeconds: number): Promise<MetricBucket[]>
  catalog: Catalog
  /** CATALOG_DIR, as shown on the marketplace. */
  catalogDir: string
  /** SPECS_DIR: where a file-owned plugin's file is. */
  specsDir: string
  /** Default public/console of the package. */
  assetsDir?: string
}

export interface WebConsole {
  routes: Hono
  sessions: BrowserSessionCheck
  close(): void
}

/** How far back the dashboard looks for a plugin's latest sample (a few HEALTH_INTERVALs). */
const SAMPLE_LOOKBACK_MS = 10 * 60_000
const SAMPLES_MAX_AGE_MS = 5_000
const RANGES: Record<string, { ms: number; bucketSeconds: number }> = {
  '1h': { ms: 3_600_000, bucketSeconds: 60 },
  '24h': { ms: 86_400_000, bucketSeconds: 300 },
}

export function createConsole(deps: ConsoleDependencies): WebConsole {
  const { store, clock } = deps.api
  const sessions = new ConsoleSessions({ ...(deps.api.apiToken !== undefined ? { apiToken: deps.api.apiToken } : {}), now: () => clock.now() })
  const snapshot = new PluginSnapshot({ source: store, events: deps.api.events, list: () => store.listPlugins(), get: (pluginId) => store.getPlugin(pluginId), clock })
  // The sampler writes every HEALTH_INTERVAL (30 s by default): one query for all plugins, at most every 5 s.
  const samplesCache = new RefreshingValue(() => deps.latestSamples(new Date(clock.now() - SAMPLE_LOOKBACK_MS)), { clock, maxAgeMs: SAMPLES_MAX_AGE_MS })
  const app = new Hono<ConsoleEnv>()
  const loginRequired = sessions.loginRequired

  const pagePaths = ['/', '/plugin/*', '/marketplace', '/specs', '/events', '/console/fragments/*', '/console/plugins/*']
  const withHeaders: MiddlewareHandler = async function addConsoleHeaders(c, next) {
    await next()
    for (const [name, value] of Object.entries(CONSOLE_HEADERS)) if (!c.res.headers.has(name)) c.res.headers.set(name, value)
  }
  for (const path of [...pagePaths, '/login', '/logout', '/console/assets/*']) app.use(path, withHeaders)
  // Writes from a page of another origin never reach a console route either (Origin, Sec-Fetch-Site).
  for (const path of [...pagePaths, '/login', '/logout']) app.use(path, unsafeOnly(originGuard()))
  for (const path of pagePaths) app.use(path, requireConsoleSession(sessions))

  app.route('/', assetRoutes(loadAssets(deps.assetsDir)) as unknown as Hono<ConsoleEnv>)

  const render = (c: Context<ConsoleEnv>, title: string, active: NavItem, body: Html, scripts: string[] = [], styles: string[] = []) =>
    c.html(page({ title, active, session: c.get('session'), loginRequired, scripts, styles }, body))

  // --- the dashboard ---
  const dashboard = async (c: Context<ConsoleEnv>) => {
    const filter = readDashboardFilter((name) => c.req.query(name))
    const view = dashboardView(await snapshot.read(), filter)
    const now = clock.now()
    const samples = await samplesCache.read()
    return { filter, body: dashboardBody(view, filter, samples, now) }
  }
  app.get('/', async (c) => {
    const { filter, body } = await dashboard(c)
    return render(c, 'Dashboard', 'dashboard', html`<h1>Plugins</h1>${dashboardFilters(filter)}<section id="dashboard" data-live="/console/fragments/dashboard" data-live-query="true" data-live-every="30">${body}</section>`)
  })
  app.get('/console/fragments/dashboard', async (c) => c.html((await dashboard(c)).body))

  // --- a plugin ---
  // RUNTIME=swarm: the page lists the service's tasks too.
  const tasksOf = async (plugin: Plugin) => (deps.api.runtimeName === 'swarm' ? await store.tasks.listTasks(plugin.id) : undefined)

  app.get('/plugin/:name', async (c) => {
    const plugin = await store.getPlugin(c.req.param('name'))
    if (plugin === undefined) return notFoundPage(c, c.req.param('name'))
    const events = await store.listEvents({ pluginId: plugin.id, limit: 30 })
    return render(c, plugin.forgehookId, 'plugin', pluginPageBody(plugin, events, { now: clock.now(), specsDir: deps.specsDir }, await tasksOf(plugin)), ['uplot.js', 'plugin.js'], ['uplot.css'])
  })
  app.get('/console/fragments/plugin/:name/status', async (c) => {
    const plugin = await store.getPlugin(c.req.param('name'))
    if (plugin === undefined) return c.html(html`<h2>Status</h2><p class="notice" id="status-gone">This plugin is gone (uninstalled). Its audit trail stays under <a href="/events?plugin=${c.req.param('name')}">Events</a>.</p>`)
    return c.html(statusFragment(plugin, clock.now(), await tasksOf(plugin)))
  })
  app.get('/console/fragments/plugin/:name/events', async (c) => {
    const name = c.req.param('name')
    const plugin = await store.getPlugin(name)
    const events = await store.listEvents({ ...(plugin ? { pluginId: plugin.id } : { forgehookId: name }), limit: 30 })
    return c.html(timelineFragment(name, events, clock.now()))
  })
  app.get('/console/plugins/:name/metrics', async (c) => {
    const plugin = await store.requirePlugin(c.req.param('name'))
    const range = RANGES[c.req.query('range') ?? '1h'] ?? RANGES['1h']!
    const buckets = await deps.metricBuckets(plugin.id, new Date(clock.now() - range.ms), range.bucketSeconds)
    const now = clock.now()
    return c.json({
      from: Math.floor((now - range.ms) / 1000),
      to: Math.floor(now / 1000),
      bucketSeconds: range.bucketSeconds,
      at: buckets.map((bucket) => Math.floor(bucket.at.getTime() / 1000)),
      cpu: buckets.map((bucket) => bucket.cpuUsagePercent),
      memory: buckets.map((bucket) => bucket.memoryUsageMb),
      requests: buckets.map((bucket) => bucket.requests),
      errors: buckets.map((bucket) => bucket.errors),
      latencyMs: buckets.map((bucket) => bucket.avgResponseTimeMs),
    })
  })
  app.post('/console/plugins/:name/spec/check', bodyLimit({ maxSize: MAX_EDIT_BYTES + 4096, onError: tooLarge }), async (c) => {
    const plugin = await store.requirePlugin(c.req.param('name'))
    const body = (await c.req.json().catch(() => undefined)) as { yaml?: unknown } | undefined
    if (typeof body?.yaml !== 'string') throw new ApiError(400, 'malformed_json', 'send {"yaml": "<the document>"}')
    return c.json(checkSpecEdit(body.yaml, plugin, deps.api.hostPorts, deps.api.runtimeName))
  })

  // --- the marketplace, the spec files, the events ---
  app.get('/marketplace', async (c) => {
    const listing = await deps.catalog.list()
    const installed = new Map((await snapshot.read()).map((plugin) => [plugin.forgehookId, plugin]))
    return render(c, 'Marketplace', 'marketplace', marketplaceBody(listing, installed, deps.catalogDir), ['marketplace.js'])
  })
  const specReports = () => deps.api.specs?.list() ?? []
  app.get('/specs', (c) => render(c, 'Spec files', 'specs', specsBody(specReports(), deps.specsDir)))
  app.get('/console/fragments/specs', (c) => c.html(specsFragment(specReports(), deps.specsDir)))
  const eventsPage = async (c: Context<ConsoleEnv>) => {
    const filter = readEventsFilter((name) => c.req.query(name))
    try {
      return { filter, page: await store.listEvents(eventQueryOf(filter)) }
    } catch (error) {
      if (error instanceof InvalidValueError && error.field === 'cursor') throw new ApiError(400, 'invalid_query', 'not a cursor from a previous page', [{ field: 'cursor', message: 'not a cursor from a previous page' }])
      throw error
    }
  }
  app.get('/events', async (c) => {
    const { filter, page: events } = await eventsPage(c)
    return render(c, 'Events', 'events', eventsBody(filter, events, clock.now()))
  })
  app.get('/console/fragments/events', async (c) => {
    const { filter, page: events } = await eventsPage(c)
    return c.html(eventsFragment(filter, events, clock.now()))
  })

  // --- login and logout ---
  // A failed login answers 200 with the form again: the browser shows it as a page, not a failed load.
  const loginPage = (c: Context, next: string, error?: string) => {
    const login = sessions.issueLogin()
    setCookie(c, LOGIN_COOKIE, login.nonce, { httpOnly: true, sameSite: 'Strict', path: '/login', maxAge: LOGIN_TTL_SECONDS, secure: new URL(c.req.url).protocol === 'https:' })
    return c.html(page({ title: 'Log in', active: 'login', loginRequired }, loginBody({ csrfToken: login.csrfToken, next, ...(error ? { error } : {}) })))
  }
  app.get('/login', (c) => {
    const next = safeNext(c.req.query('next'))
    if (!loginRequired || sessions.verify(getCookie(c, SESSION_COOKIE))) return c.redirect(next, 303)
    return loginPage(c, next)
  })
  app.post('/login', bodyLimit({ maxSize: 16 * 1024, onError: tooLarge }), async (c) => {
    const form = await c.req.parseBody()
    const next = safeNext(typeof form.next === 'string' ? form.next : undefined)
    if (!loginRequired) return c.redirect(next, 303)
    if (!sessions.loginCsrfValid(getCookie(c, LOGIN_COOKIE), typeof form.csrf === 'string' ? form.csrf : undefined)) {
      return loginPage(c, next, 'The login form expired: try again.')
    }
    if (typeof form.token !== 'string' || !sessions.tokenMatches(form.token)) {
      deps.api.logger.warn({ remote: c.req.header('x-forwarded-for') }, 'console login with a wrong token')
      return loginPage(c, next, 'That is not the API token.')
    }
    deleteCookie(c, LOGIN_COOKIE, { path: '/login' })
    setSessionCookie(c, sessions.issue().cookieValue)
    return c.redirect(next, 303)
  })
  app.post('/logout', bodyLimit({ maxSize: 16 * 1024, onError: tooLarge }), async (c) => {
    const session = sessions.verify(getCookie(c, SESSION_COOKIE))
    const form = await c.req.parseBody()
    if (session === undefined) return c.redirect('/login', 303)
    if (!sessions.csrfValid(session, typeof form.csrf === 'string' ? form.csrf : undefined)) {
      throw new ApiError(403, 'csrf_token_invalid', 'this logout carries no valid CSRF token: reload the page and try again')
    }
    sessions.revoke(session)
    deleteCookie(c, SESSION_COOKIE, { path: '/' })
    return c.redirect(loginRequired ? '/login' : '/', 303)
  })

  const notFoundPage = (c: Context<ConsoleEnv>, name: string) =>
    c.html(
      page(
        { title: 'Not found', active: 'plugin', session: c.get('session'), loginRequired },
        html`<h1>No plugin “${name}”</h1><p>It may have been uninstalled: its audit trail stays under <a href="/events?plugin=${name}">Events</a>. <a href="/">Back to the dashboard</a>.</p>`,
      ),
      404,
    )

  return { routes: app as unknown as Hono, sessions: sessionCheck(sessions), close: () => snapshot.close() }
}

/** A guard for writes only: reads of a page (links from elsewhere) stay allowed. */
function unsafeOnly(guard: MiddlewareHandler): MiddlewareHandler {
  return async function guardWrites(c, next) {
    if (c.req.method === 'GET' || c.req.method === 'HEAD') return next()
    return guard(c, next)
  }
}

function tooLarge(): never {
  throw new ApiError(413, 'payload_too_large', 'the request body is too large')
}
