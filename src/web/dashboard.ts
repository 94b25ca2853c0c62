// GET / : every plugin with its phase, health, host port, restarts, age, source, latest CPU
// and memory and its error; counts by phase; filters (phase, health, label, text) in the URL;
// 50 rows a page. The table is also served alone (GET /console/fragments/dashboard) for the
// page's script, which fetches it again whenever the event stream reports a change.
import { html } from 'hono/html'
import type { Plugin } from '../db/plugin-store.js'
import { HEALTH_STATUSES, PLUGIN_PHASES, type HealthStatus, type PluginPhase } from '../db/schema.js'
import type { LatestResourceSample } from '../db/metric-queries.js'
import { presentedPhase } from '../api/plugin-documents.js'
import { redactText } from '../spec/secrets.js'
import { age, badge, sourceLabel, type Html } from './layout.js'

export const PAGE_SIZE = 50

export interface DashboardFilter {
  phase?: PluginPhase
  health?: HealthStatus
  /** `key` (has the label) or `key=value`. */
  label?: string
  /** Case-insensitive, in the name, display name, image, labels, source and error. */
  text?: string
  page: number
}

/** The filter a query string asks for; values that are no phase or health are ignored, as a page should. */
export function readDashboardFilter(query: (name: string) => string | undefined): DashboardFilter {
  const phase = query('phase')
  const health = query('health')
  const label = query('label')?.trim()
  const text = query('q')?.trim()
  const page = Number(query('page') ?? '1')
  return {
    ...((PLUGIN_PHASES as readonly string[]).includes(phase ?? '') ? { phase: phase as PluginPhase } : {}),
    ...((HEALTH_STATUSES as readonly string[]).includes(health ?? '') ? { health: health as HealthStatus } : {}),
    ...(label ? { label } : {}),
    ...(text ? { text } : {}),
    page: Number.isInteger(page) && page >= 1 ? page : 1,
  }
}

export function filterQuery(filter: DashboardFilter, overrides: Partial<DashboardFilter> = {}): string {
  const merged = { ...filter, ...overrides }
  const params = new URLSearchParams()
  if (merged.phase) params.set('phase', merged.phase)
  if (merged.health) params.set('health', merged.health)
  if (merged.label) params.set('label', merged.label)
  if (merged.text) params.set('q', merged.text)
  if (merged.page > 1) params.set('page', String(merged.page))
  const text = params.toString()
  return text === '' ? '' : `?${text}`
}

export interface DashboardView {
  total: number
  countsByPhase: Map<PluginPhase, number>
  matching: number
  rows: Plugin[]
  page: number
  pages: number
}

/** Filters and pages the snapshot; counts by phase are of every plugin. */
export function dashboardView(plugins: Plugin[], filter: DashboardFilter): DashboardView {
  const countsByPhase = new Map<PluginPhase, number>()
  for (const plugin of plugins) countsByPhase.set(presentedPhase(plugin), (countsByPhase.get(presentedPhase(plugin)) ?? 0) + 1)
  const matches = plugins.filter((plugin) => matchesFilter(plugin, filter)).sort((a, b) => a.forgehookId.localeCompare(b.forgehookId))
  const pages = Math.max(1, Math.ceil(matches.length / PAGE_SIZE))
  const page = Math.min(filter.page, pages)
  return { total: plugins.length, countsByPhase, matching: matches.length, rows: matches.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE), page, pages }
}

function matchesFilter(plugin: Plugin, filter: DashboardFilter): boolean {
  if (filter.phase && presentedPhase(plugin) !== filter.phase) return false
  if (filter.health && plugin.healthStatus !== filter.health) return false
  if (filter.label) {
    const [key, ...rest] = filter.label.split('=')
    const value = rest.length > 0 ? rest.join('=') : undefined
    if (!(key! in plugin.labels) || (value !== undefined && plugin.labels[key!] !== value)) return false
  }
  if (filter.text) {
    const needle = filter.text.toLowerCase()
    const haystack = [plugin.forgehookId, displayName(plugin), imageOf(plugin), plugin.source, ...Object.entries(plugin.labels).map(([k, v]) => `${k}=${v}`), plugin.error ?? '']
    if (!haystack.some((text) => text.toLowerCase().includes(needle))) return false
  }
  return true
}

export function displayName(plugin: Plugin): string {
  return typeof plugin.manifest.name === 'string' ? plugin.manifest.name : ''
}

export function imageOf(plugin: Plugin): string {
  const image = plugin.manifest.image
  if (typeof image === 'string') return image
  if (typeof image === 'object' && image !== null && 'repository' in image) {
    const { repository, tag } = image as { repository?: unknown; tag?: unknown }
    return `${String(repository)}${typeof tag === 'string' ? `:${tag}` : ''}`
  }
  return ''
}

export function dashboardFilters(filter: DashboardFilter): Html {
  const option = (value: string, selected: string | undefined) => html`<option value="${value}" ${selected === value ? 'selected' : ''}>${value}</option>`
  return html`<form class="filters" method="get" action="/" id="dashboard-filters">
  <label>Phase <select name="phase"><option value="">any</option>${PLUGIN_PHASES.map((phase) => option(phase, filter.phase))}</select></label>
  <label>Health <select name="health"><option value="">any</option>${HEALTH_STATUSES.map((health) => option(health, filter.health))}</select></label>
  <label>Label <input name="label" value="${filter.label ?? ''}" placeholder="team=payments" size="14"></label>
  <label>Search <input name="q" type="search" value="${filter.text ?? ''}" placeholder="name, image, error…" size="18"></label>
  <button type="submit">Filter</button>
  <a href="/" class="button-link">Clear</a>
</form>`
}

export function dashboardBody(view: DashboardView, filter: DashboardFilter, samples: Map<string, LatestResourceSample>, now: number): Html {
  const countLink = (phase: PluginPhase | undefined, label: string, count: number) =>
    html`<a class="count ${phase ? `phase-${phase}` : 'all'} ${filter.phase === phase ? 'active' : ''}" href="/${filterQuery(filter, { phase, page: 1 })}"><b>${count}</b> ${label}</a>`
  const first = view.matching === 0 ? 0 : (view.page - 1) * PAGE_SIZE + 1
  const last = Math.min(view.page * PAGE_SIZE, view.matching)
  return html`<div class="counts" id="phase-counts">${countLink(undefined, 'plugins', view.total)}${PLUGIN_PHASES.filter((phase) => (view.countsByPhase.get(phase) ?? 0) > 0).map((phase) =>
    countLink(phase, phase, view.countsByPhase.get(phase) ?? 0),
  )}</div>
<table class="plugins" id="plugin-table">
<thead><tr><th>Name</th><th>Phase</th><th>Ready</th><th>Health</th><th>Host port</th><th>Restarts</th><th>Age</th><th>Source</th><th>CPU</th><th>Memory</th><th>Error</th></tr></thead>
<tbody>
${view.rows.length === 0 ? html`<tr><td colspan="11" class="empty">${view.total === 0 ? 'No plugins yet: install one from the Marketplace, drop a spec file into the spec folder, or use the API.' : 'No plugin matches these filters.'}</td></tr>` : ''}
${view.rows.map((plugin) => pluginRow(plugin, samples.get(plugin.id), now))}
</tbody>
</table>
<nav class="pager"><span>${first}–${last} of ${view.matching}</span>
${view.page > 1 ? html`<a href="/${filterQuery(filter, { page: view.page - 1 })}" rel="prev">← Previous</a>` : ''}
${view.page < view.pages ? html`<a href="/${filterQuery(filter, { page: view.page + 1 })}" rel="next">Next →</a>` : ''}
</nav>`
}

function pluginRow(plugin: Plugin, sample: LatestResourceSample | undefined, now: number): Html {
  const phase = presentedPhase(plugin)
  const error = plugin.error === null ? '' : redactText(plugin.error, plugin)
  return html`<tr data-plugin="${plugin.forgehookId}" data-phase="${phase}">
<td class="name"><a href="/plugin/${plugin.forgehookId}">${plugin.forgehookId}</a><small>${displayName(plugin)}</small></td>
<td class="phase">${badge('phase', phase)}</td>
<td class="ready">${readyText(plugin)}</td>
<td class="health">${badge('health', plugin.healthStatus)}</td>
<td class="num">${plugin.hostPort ?? '–'}</td>
<td class="num">${plugin.restartCount}</td>
<td class="num">${age(plugin.createdAt, now)}</td>
<td class="source">${sourceLabel(plugin.source)}</td>
<td class="num">${sample?.cpuUsagePercent == null ? '–' : `${sample.cpuUsagePercent.toFixed(1)} %`}</td>
<td class="num">${sample?.memoryUsageMb == null ? '–' : `${sample.memoryUsageMb.toFixed(1)} MiB`}</td>
<td class="error" title="${error}">${error}</td>
</tr>`
}

/**
 * READY as `forgectl get` shows it: replicas running / wanted. The swarm runtime records both;
 * on the docker runtime a plugin wants its one container while it should run, and has it
 * while it runs.
 */
export function readyText(plugin: Plugin): string {
  if (plugin.replicasDesired !== null) return `${plugin.replicasRunning ?? 0}/${plugin.replicasDesired}`
  const desired = plugin.desiredState === 'running' && plugin.deletionRequestedAt === null ? 1 : 0
  return `${presentedPhase(plugin) === 'running' && plugin.containerId ? 1 : 0}/${desired}`
}
