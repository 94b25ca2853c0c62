// GET /marketplace : the ForgeHooks the catalog offers, one card each with Install, or
// Installed / Update when a plugin of that id exists. Install asks for the config and
// environment the entry declares (defaults filled in, secret fields masked); the page's
// script sends the guide's POST /api/v1/plugins/install and lands on the plugin page.
import { html } from 'hono/html'
import type { Plugin } from '../db/plugin-store.js'
import type { CatalogEntry, CatalogField, CatalogListing } from './catalog.js'
import { ownedByFile } from './plugin-page.js'
import type { Html } from './layout.js'

export function marketplaceBody(listing: CatalogListing, installed: Map<string, Plugin>, catalogDir: string): Html {
  return html`<h1>Marketplace</h1>
<p class="hint">ForgeHooks offered by the catalog (<code>${catalogDir}</code>, and <code>CATALOG_URL</code> when set). Install declares the plugin through <code>POST /api/v1/plugins/install</code>; the controller does the rest.</p>
${listing.problems.length > 0
    ? html`<ul class="problems" id="catalog-problems">${listing.problems.map((problem) => html`<li><code>${problem.origin}</code>: ${problem.message}</li>`)}</ul>`
    : ''}
${listing.entries.length === 0 ? html`<p class="empty">The catalog is empty: put ForgeHook entries (YAML) into <code>${catalogDir}</code>.</p>` : ''}
<div class="cards">
${listing.entries.map((entry) => card(entry, installed.get(entry.manifest.id)))}
</div>`
}

function card(entry: CatalogEntry, plugin: Plugin | undefined): Html {
  const manifest = entry.manifest
  const image = typeof manifest.image === 'string' ? manifest.image : `${manifest.image.repository}${manifest.image.tag ? `:${manifest.image.tag}` : ''}`
  const installedVersion = plugin && typeof plugin.manifest.version === 'string' ? plugin.manifest.version : undefined
  const file = plugin ? ownedByFile(plugin) : undefined
  return html`<article class="card forgehook" data-forgehook="${manifest.id}">
  <h2>${manifest.name} <span class="version">v${manifest.version}</span></h2>
  <p class="id"><code>${manifest.id}</code> · <code>${image}</code></p>
  <p class="description">${manifest.description ?? ''}</p>
  ${plugin === undefined
    ? installForm(entry)
    : installedVersion === manifest.version
      ? html`<p class="installed">Installed <a href="/plugin/${plugin.forgehookId}">${plugin.forgehookId}</a> (v${installedVersion})</p>`
      : html`<p class="installed">Installed v${installedVersion ?? '?'}: <a href="/plugin/${plugin.forgehookId}">${plugin.forgehookId}</a></p>
  ${file
    ? html`<p class="notice">Declared by the spec file <code>${file}</code>: update it there.</p>`
    : html`<button type="button" class="update" data-update="${manifest.id}" data-manifest="${JSON.stringify(manifest)}">Update to v${manifest.version}</button><p class="action-result" role="status"></p>`}`}
  <p class="origin muted">${entry.origin}</p>
</article>`
}

function installForm(entry: CatalogEntry): Html {
  const fields = (kind: 'config' | 'env', list: CatalogField[] | undefined) =>
    (list ?? []).map(
      (field) => html`<label class="field"><span>${field.name}${field.required ? ' *' : ''}</span>
  <input name="${kind}:${field.name}" type="${field.secret ? 'password' : 'text'}" value="${field.default === undefined ? '' : String(field.default)}" ${field.required ? 'required' : ''} data-kind="${kind}" data-key="${field.name}" data-type="${field.type ?? 'string'}" autocomplete="off">
  ${field.description ? html`<small>${field.description}</small>` : ''}</label>`,
    )
  return html`<details class="install"><summary>Install</summary>
<form class="install-form" data-install="${entry.manifest.id}" data-manifest="${JSON.stringify(entry.manifest)}">
  ${(entry.config ?? []).length > 0 ? html`<fieldset><legend>Config</legend>${fields('config', entry.config)}</fieldset>` : ''}
  ${(entry.environment ?? []).length > 0 ? html`<fieldset><legend>Environment</legend>${fields('env', entry.environment)}</fieldset>` : ''}
  <label class="field inline"><input type="checkbox" name="autoStart" checked> start it</label>
  <button type="submit">Install ${entry.manifest.name}</button>
  <p class="action-result" role="status"></p>
</form></details>`
}
