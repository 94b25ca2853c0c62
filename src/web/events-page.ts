// GET /events : the audit trail (plugin_events), newest first, 50 a page with the store's
// cursor, filtered by plugin, type and time, all kept in the URL. The first page follows the
// event stream; an older page stays as it is.
import { html } from 'hono/html'
import type { EventQuery, PluginEvent } from '../db/plugin-store.js'
import { summarise } from './plugin-page.js'
import { timeTag, type Html } from './layout.js'

export const EVENTS_PAGE_SIZE = 50

export interface EventsFilter {
  plugin?: string
  types?: string[]
  /** ISO time. */
  since?: string
  cursor?: string
}

export function readEventsFilter(query: (name: string) => string | undefined): EventsFilter {
  const plugin = query('plugin')?.trim()
  const types = (query('type') ?? '').split(',').map((type) => type.trim()).filter(Boolean)
  const since = query('since')?.trim()
  const cursor = query('cursor')?.trim()
  return {
    ...(plugin ? { plugin } : {}),
    ...(types.length > 0 ? { types } : {}),
    ...(since && !Number.isNaN(new Date(since).getTime()) ? { since } : {}),
    ...(cursor ? { cursor } : {}),
  }
}

export function eventQueryOf(filter: EventsFilter): EventQuery {
  return {
    limit: EVENTS_PAGE_SIZE,
    ...(filter.plugin ? { forgehookId: filter.plugin } : {}),
    ...(filter.types ? { types: filter.types } : {}),
    ...(filter.since ? { since: new Date(filter.since) } : {}),
    ...(filter.cursor ? { cursor: filter.cursor } : {}),
  }
}

function queryOf(filter: EventsFilter, cursor?: string): string {
  const params = new URLSearchParams()
  if (filter.plugin) params.set('plugin', filter.plugin)
  if (filter.types) params.set('type', filter.types.join(','))
  if (filter.since) params.set('since', filter.since)
  if (cursor) params.set('cursor', cursor)
  const text = params.toString()
  return text === '' ? '' : `?${text}`
}

export function eventsBody(filter: EventsFilter, page: { items: PluginEvent[]; nextCursor?: string }, now: number): Html {
  return html`<h1>Events</h1>
<form class="filters" method="get" action="/events">
  <label>Plugin <input name="plugin" value="${filter.plugin ?? ''}" placeholder="hello-http" size="16"></label>
  <label>Type <input name="type" value="${filter.types?.join(',') ?? ''}" placeholder="plugin:crashed,plugin:started" size="28"></label>
  <label>Since <input name="since" value="${filter.since ?? ''}" placeholder="2026-01-01T00:00:00Z" size="22"></label>
  <button type="submit">Filter</button> <a href="/events" class="button-link">Clear</a>
</form>
<section id="events"${filter.cursor ? '' : html` data-live="/console/fragments/events${queryOf(filter)}"`}${filter.plugin ? html` data-live-plugin="${filter.plugin}"` : ''}>
${eventsFragment(filter, page, now)}
</section>`
}

export function eventsFragment(filter: EventsFilter, page: { items: PluginEvent[]; nextCursor?: string }, now: number): Html {
  return html`<table class="events"><thead><tr><th>When</th><th>Plugin</th><th>Type</th><th>Data</th></tr></thead><tbody>
${page.items.length === 0 ? html`<tr><td colspan="4" class="empty">No events match.</td></tr>` : ''}
${page.items.map(
  (event) => html`<tr data-event-id="${event.id}"><td>${timeTag(event.timestamp, now)}</td><td><a href="/plugin/${event.forgehookId}">${event.forgehookId}</a></td><td><b>${event.type}</b></td><td><code class="data">${summarise(event.data)}</code></td></tr>`,
)}
</tbody></table>
<nav class="pager">${filter.cursor ? html`<a href="/events${queryOf(filter)}">↑ Newest</a>` : ''} ${page.nextCursor ? html`<a href="/events${queryOf(filter, page.nextCursor)}" rel="next">Older →</a>` : ''}</nav>`
}
