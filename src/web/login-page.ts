// GET /login : the one page shown without a session when FORGE_API_TOKEN is set. The form
// posts the token; its CSRF token is tied to a short-lived cookie of its own (login CSRF).
import { html } from 'hono/html'
import type { Html } from './layout.js'

export function loginBody(options: { csrfToken: string; next: string; error?: string }): Html {
  return html`<section class="login card">
<h1>Log in</h1>
<p class="hint">This console asks for the daemon's API token (<code>FORGE_API_TOKEN</code>). It is kept in an HttpOnly session cookie, never in the page.</p>
${options.error ? html`<p class="error" id="login-error" role="alert">${options.error}</p>` : ''}
<form method="post" action="/login" id="login-form">
  <input type="hidden" name="csrf" value="${options.csrfToken}">
  <input type="hidden" name="next" value="${options.next}">
  <label class="field"><span>API token</span><input type="password" name="token" id="token" autocomplete="current-password" required autofocus></label>
  <button type="submit">Log in</button>
</form>
</section>`
}

/** Where a login may send the browser: a path of this console only (no open redirect). */
export function safeNext(next: string | undefined): string {
  if (next === undefined || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return '/'
  if (/[\r\n]/.test(next)) return '/'
  return next
}
