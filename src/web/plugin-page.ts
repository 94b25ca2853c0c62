// GET /plugin/:name : one plugin. Status and conditions, the rollout, its source, the spec as
// YAML (secrets redacted as the API redacts them) with an editor, the audit trail, a live log
// tail and charts of plugin_metrics. The status and the timeline are also served alone
// (fragments) for the page's script, which fetches them again on each event of the plugin.
import path from 'node:path'
import { html } from 'hono/html'
import type { Plugin, PluginEvent } from '../db/plugin-store.js'
import type { PluginTask } from '../db/plugin-types.js'
import { presentedPhase } from '../api/plugin-documents.js'
import { redactText } from '../spec/secrets.js'
import { displayName, imageOf, readyText } from './dashboard.js'
import { badge, sourceLabel, timeTag, type Html } from './layout.js'
import { editableYaml } from './spec-edit.js'

export interface PluginPageContext {
  now: number
  specsDir: string
}

/** Whether a spec file declares the plugin: the file is then the only place to change it. */
export function ownedByFile(plugin: Plugin): string | undefined {
  return plugin.source.startsWith('file:') ? plugin.source.slice('file:'.length) : undefined
}

export function pluginPageBody(plugin: Plugin, events: { items: PluginEvent[]; nextCursor?: string }, context: PluginPageContext, tasks?: PluginTask[]): Html {
  const file = ownedByFile(plugin)
  const name = plugin.forgehookId
  return html`<section class="plugin-head" id="plugin" data-plugin="${name}" data-resource-version="${plugin.resourceVersion}" data-generation="${plugin.generation}" data-file-owned="${file ? 'true' : 'false'}">
  <h1>${name} <small>${displayName(plugin)}</small></h1>
  <div class="actions" id="actions">
    <button type="button" data-action="start" ${file ? 'disabled' : ''}>Start</button>
    <button type="button" data-action="stop" ${file ? 'disabled' : ''}>Stop</button>
    <button type="button" data-action="restart">Restart</button>
    <button type="button" data-action="delete" class="danger" ${file ? 'disabled' : ''}>Delete…</button>
    <a class="button-link" href="/plugins/${name}/" rel="noopener">Open plugin ↗</a>
  </div>
  <p class="action-result" id="action-result" role="status"></p>
  <dialog id="delete-dialog">
    <form method="dialog">
      <p>Delete the plugin <b>${name}</b>? Its container is stopped and removed; its audit trail and named volumes are kept.</p>
      <label><input type="checkbox" id="delete-purge"> also remove its named volumes</label>
      <menu><button value="cancel">Cancel</button> <button value="confirm" class="danger" id="delete-confirm">Delete ${name}</button></menu>
    </form>
  </dialog>
</section>

<section class="card" id="status" data-live="/console/fragments/plugin/${name}/status" data-live-plugin="${name}">
${statusFragment(plugin, context.now, tasks)}
</section>

<section class="card" id="source">
  <h2>Source</h2>
  ${sourceExplanation(plugin, context.specsDir)}
</section>

<section class="card" id="spec">
  <h2>Spec</h2>
  ${file
    ? html`<p class="notice" id="file-owned">Declared by the spec file <code>${path.join(context.specsDir, file)}</code>: that file is its source of truth, so the console does not edit, stop or delete it (a change here would be undone at the file's next edit, and deleting it would not remove the file). Edit the file instead; <a href="/specs">Spec files</a> shows whether it was applied.</p>
<pre class="yaml" id="spec-yaml">${editableYaml(plugin)}</pre>`
    : html`<p class="hint">The spec as the API shows it (secret values read <code>***</code> and keep their stored values when sent back). Check shows errors at their line and a diff; Apply writes it with <code>If-Match</code>, so a change someone else made meanwhile is refused, not overwritten.</p>
<div class="editor" id="editor">
  <pre class="gutter" id="editor-gutter" aria-hidden="true"></pre>
  <textarea id="spec-editor" spellcheck="false" rows="24" aria-label="spec YAML">${editableYaml(plugin)}</textarea>
</div>
<div class="editor-actions"><button type="button" id="spec-check">Check &amp; diff</button> <button type="button" id="spec-apply" disabled>Apply</button> <button type="button" id="spec-reset">Reset</button></div>
<div id="spec-result" role="status"></div>`}
</section>

<section class="card" id="charts">
  <h2>Metrics <span class="range-switch"><button type="button" data-range="1h" class="active">1 h</button><button type="button" data-range="24h">24 h</button></span></h2>
  <div class="charts"><figure><figcaption>CPU (% of a core)</figcaption><div class="chart" id="chart-cpu"></div></figure>
  <figure><figcaption>Memory (MiB)</figcaption><div class="chart" id="chart-memory"></div></figure>
  <figure><figcaption>Proxied requests and errors</figcaption><div class="chart" id="chart-requests"></div></figure></div>
  <p class="hint" id="chart-note"></p>
</section>

<section class="card" id="logs">
  <h2>Logs <span class="log-controls"><button type="button" id="log-follow" class="active">Following</button> <button type="button" id="log-pause">Pause</button> <button type="button" id="log-clear">Clear</button></span></h2>
  <pre class="log" id="log-lines" data-plugin="${name}"></pre>
  <p class="hint" id="log-state"></p>
</section>

<section class="card" id="timeline" data-live="/console/fragments/plugin/${name}/events" data-live-plugin="${name}">
${timelineFragment(name, events, context.now)}
</section>`
}

export function statusFragment(plugin: Plugin, now: number, tasks?: PluginTask[]): Html {
  const phase = presentedPhase(plugin)
  const error = plugin.error === null ? undefined : redactText(plugin.error, plugin)
  const rollout = plugin.rollout
  return html`<h2>Status</h2>
<dl class="status" id="status-facts" data-phase="${phase}" data-container="${plugin.containerId ?? ''}" data-started="${plugin.startedAt?.toISOString() ?? ''}">
  <dt>Phase</dt><dd id="status-phase">${badge('phase', phase)} <span class="muted">desired ${plugin.desiredState}</span></dd>
  <dt>Ready</dt><dd id="status-ready">${readyText(plugin)} <span class="muted">${plugin.replicasDesired !== null ? 'tasks running / replicas wanted' : 'container running / wanted'}</span></dd>
  <dt>Health</dt><dd id="status-health">${badge('health', plugin.healthStatus)} <span class="muted">checked ${timeTag(plugin.lastHealthCheck, now)}</span></dd>
  <dt>Host port</dt><dd>${plugin.hostPort ?? '–'}</dd>
  <dt>Image</dt><dd><code>${imageOf(plugin)}</code></dd>
  <dt>Container</dt><dd><code>${plugin.containerName ?? '–'}</code> <span class="muted">${plugin.containerId?.slice(0, 12) ?? ''}</span></dd>
  <dt>Restarts</dt><dd>${plugin.restartCount}${plugin.nextRestartAt ? html` <span class="muted">next restart ${plugin.nextRestartAt.toISOString()}</span>` : ''}</dd>
  <dt>Generation</dt><dd>${plugin.generation} <span class="muted">observed ${plugin.observedGeneration}, resourceVersion ${plugin.resourceVersion}</span></dd>
  <dt>Created</dt><dd>${timeTag(plugin.createdAt, now)}</dd>
  <dt>Started</dt><dd>${timeTag(plugin.startedAt, now)}</dd>
  <dt>Stopped</dt><dd>${timeTag(plugin.stoppedAt, now)}</dd>
  ${error ? html`<dt>Error</dt><dd class="error" id="status-error">${error}</dd>` : ''}
</dl>
${tasks ? tasksTable(plugin, tasks, now) : ''}
<h3>Conditions</h3>
<table class="conditions"><thead><tr><th>Type</th><th>Status</th><th>Reason</th></tr></thead><tbody>
${conditions(plugin).map((condition) => html`<tr><td>${condition.type}</td><td>${badge('status', condition.status)}</td><td>${condition.reason}</td></tr>`)}
</tbody></table>
${rollout
    ? html`<h3>Rollout ${['complete', 'failed', 'rolled-back'].includes(rollout.phase) ? '(the last one)' : 'in progress'}</h3>
<dl class="status rollout" id="rollout">
  <dt>Phase</dt><dd>${badge('status', rollout.phase)} <span class="muted">${rollout.strategy}, generation ${rollout.generation}</span></dd>
  <dt>Image</dt><dd><code>${rollout.fromImage ?? '–'}</code> → <code>${rollout.toImage}</code></dd>
  <dt>Started</dt><dd>${timeTag(new Date(rollout.startedAt), now)}</dd>
  ${rollout.switchedAt ? html`<dt>Switched</dt><dd>${timeTag(new Date(rollout.switchedAt), now)}</dd>` : ''}
  ${rollout.finishedAt ? html`<dt>Finished</dt><dd>${timeTag(new Date(rollout.finishedAt), now)}</dd>` : ''}
  ${rollout.error ? html`<dt>Error</dt><dd class="error">${redactText(rollout.error, plugin)}</dd>` : ''}
</dl>`
    : ''}`
}

/** RUNTIME=swarm: the service's tasks as last observed (plugin_tasks), where each runs and how it is. */
function tasksTable(plugin: Plugin, tasks: PluginTask[], now: number): Html {
  return html`<h3>Tasks</h3>
<table class="tasks" id="tasks"><thead><tr><th>Slot</th><th>Node</th><th>State</th><th>Desired</th><th>Port</th><th>Container</th><th>Updated</th><th>Error</th></tr></thead><tbody>
${tasks.length === 0 ? html`<tr><td colspan="8" class="empty">No tasks.</td></tr>` : ''}
${tasks.map((task) => html`<tr data-task="${task.taskId}" data-node="${task.nodeName ?? ''}" data-state="${task.state}"><td class="num">${task.slot ?? '–'}</td><td>${task.nodeName ?? '–'}${task.nodeState && task.nodeState !== 'ready' ? html` <span class="muted">(${task.nodeState})</span>` : ''}</td><td>${badge('status', task.state)}</td><td>${task.desiredState}</td><td class="num">${task.hostPort ?? '–'}</td><td><code>${task.containerId?.slice(0, 12) ?? '–'}</code></td><td>${timeTag(task.updatedAt, now)}</td><td class="error">${task.error === null ? '' : redactText(task.error, plugin)}</td></tr>`)}
</tbody></table>`
}

interface Condition {
  type: string
  status: 'True' | 'False' | 'Unknown'
  reason: string
}

/** Kubernetes-style conditions, read off the row. */
export function conditions(plugin: Plugin): Condition[] {
  const phase = presentedPhase(plugin)
  const synced = plugin.observedGeneration === plugin.generation
  const converged = synced && phase === plugin.desiredState
  const health = plugin.healthStatus
  return [
    {
      type: 'Synced',
      status: synced ? 'True' : 'False',
      reason: synced ? `generation ${plugin.generation} acted on` : `generation ${plugin.generation} not acted on yet (observed ${plugin.observedGeneration})${plugin.rollout?.phase === 'rolled-back' ? ': the rollout was rolled back' : ''}`,
    },
    { type: 'Converged', status: converged ? 'True' : 'False', reason: converged ? `${phase}, as desired` : `${phase}, desired ${plugin.desiredState}` },
    {
      type: 'Healthy',
      status: health === 'healthy' ? 'True' : health === 'unhealthy' ? 'False' : 'Unknown',
      reason: health === 'unknown' ? 'no health check, or not checked yet' : health,
    },
    ...(plugin.deletionRequestedAt ? [{ type: 'Deleting', status: 'True' as const, reason: `uninstall asked ${plugin.deletionRequestedAt.toISOString()}` }] : []),
  ]
}

function sourceExplanation(plugin: Plugin, specsDir: string): Html {
  const file = ownedByFile(plugin)
  if (file) return html`<p id="source-text">Spec file <code>${file}</code> in the spec folder: <code>${path.join(specsDir, file)}</code>.</p>`
  if (plugin.source === 'api') return html`<p id="source-text">Declared over the HTTP API (or this console, or forgectl). It can be edited here.</p>`
  if (plugin.source === 'sql') return html`<p id="source-text">Written in SQL into the <code>plugins</code> table. It can be edited here too.</p>`
  if (plugin.source === 'adopted') return html`<p id="source-text">Adopted: a <code>forgehook-${plugin.forgehookId}</code> container found without a row. Kept as it is until its spec changes.</p>`
  return html`<p id="source-text">${sourceLabel(plugin.source)}</p>`
}

export function timelineFragment(pluginName: string, events: { items: PluginEvent[]; nextCursor?: string }, now: number): Html {
  return html`<h2>Audit trail</h2>
<ol class="timeline">
${events.items.length === 0 ? html`<li class="empty">No events yet.</li>` : ''}
${events.items.map((event) => html`<li class="event event-${event.type.replace(/[^a-z-]/g, '-')}"><span class="when">${timeTag(event.timestamp, now)}</span> <b>${event.type}</b> <code class="data">${summarise(event.data)}</code></li>`)}
</ol>
${events.nextCursor ? html`<a href="/events?plugin=${pluginName}&cursor=${encodeURIComponent(events.nextCursor)}">Older events →</a>` : ''}`
}

/** An event's data on one line, long values cut. */
export function summarise(data: Record<string, unknown>): string {
  const text = Object.entries(data)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ')
  return text.length > 300 ? `${text.slice(0, 300)}…` : text
}
