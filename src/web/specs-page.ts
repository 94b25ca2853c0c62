// GET /specs : every spec file the folder watcher read, with its status, the plugins it
// declares and its errors at file, line, column and field (GET /api/v1/specs, as a page).
import path from 'node:path'
import { html } from 'hono/html'
import type { SpecFileReport } from '../sources/spec-file-report.js'
import { badge, type Html } from './layout.js'

export function specsBody(reports: SpecFileReport[], specsDir: string): Html {
  return html`<h1>Spec files</h1>
<p class="hint">The files in <code>${specsDir}</code>, as the folder watcher last read them. A bad file keeps the plugins it declared as they were.</p>
<section id="spec-files" data-live="/console/fragments/specs" data-live-types="spec:">
${specsFragment(reports, specsDir)}
</section>`
}

export function specsFragment(reports: SpecFileReport[], specsDir: string): Html {
  if (reports.length === 0) return html`<p class="empty">No spec files (or this manager does not lead: only the leader watches the folder).</p>`
  return html`<table class="specs"><thead><tr><th>File</th><th>Status</th><th>Plugins</th><th>Checked</th></tr></thead><tbody>
${[...reports]
  .sort((a, b) => a.path.localeCompare(b.path))
  .map(
    (report) => html`<tr data-spec-file="${report.path}"><td><code title="${path.join(specsDir, report.path)}">${report.path}</code></td><td>${badge('status', report.status)}</td>
<td>${report.plugins.map((name) => html`<a href="/plugin/${name}">${name}</a> `)}</td><td>${report.checkedAt}</td></tr>
${report.errors.length > 0
  ? html`<tr class="spec-errors"><td colspan="4"><ul>${report.errors.map(
      (error) =>
        html`<li><code>${report.path}${error.line !== undefined ? `:${error.line}:${error.column ?? 1}` : ''}</code>${error.document !== undefined ? ` (document ${error.document})` : ''}${error.field ? html` <b>${error.field}</b>` : ''}: ${error.message}</li>`,
    )}${report.moreErrors ? html`<li>… and ${report.moreErrors} more</li>` : ''}</ul></td></tr>`
  : ''}`,
  )}
</tbody></table>`
}
