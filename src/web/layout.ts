// The frame every console page shares: head (the stylesheet and scripts, all served from
// /console/assets/, nothing inline: the policy allows no inline script or style), the
// navigation, the CSRF token for the page's scripts (a meta tag), and the logout form.
import { html } from 'hono/html'
import type { HtmlEscapedString } from 'hono/utils/html'
import type { ConsoleSession } from './console-sessions.js'

export type Html = HtmlEscapedString | Promise<HtmlEscapedString>

/** The console's Content-Security-Policy: its own scripts, styles and requests, nothing inline, nothing of another origin. */
export const CONSOLE_CONTENT_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ')

/** Headers of every console answer, pages and fragments alike. */
export const CONSOLE_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': CONSOLE_CONTENT_POLICY,
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'same-origin',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Cache-Control': 'no-store',
}

export const ASSETS = '/console/assets'

export type NavItem = 'dashboard' | 'marketplace' | 'specs' | 'events' | 'plugin' | 'login'

export interface PageOptions {
  title: string
  active: NavItem
  /** Undefined on the login page. */
  session?: ConsoleSession
  /** Shown in the header when a login is needed (a logout button goes with it). */
  loginRequired: boolean
  /** Page scripts besides console.js, file names under /console/assets/. */
  scripts?: string[]
  /** Stylesheets besides console.css. */
  styles?: string[]
}

export function page(options: PageOptions, body: Html): Html {
  const navLink = (item: NavItem, href: string, label: string) =>
    html`<a href="${href}" class="${options.active === item ? 'active' : ''}">${label}</a>`
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${options.title} · FlowForge</title>
${options.session ? html`<meta name="csrf-token" content="${options.session.csrfToken}">` : ''}
<link rel="icon" href="${ASSETS}/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="${ASSETS}/console.css">
${(options.styles ?? []).map((file) => html`<link rel="stylesheet" href="${ASSETS}/${file}">`)}
<script src="${ASSETS}/console.js" defer></script>
${(options.scripts ?? []).map((file) => html`<script src="${ASSETS}/${file}" defer></script>`)}
</head>
<body>
<header class="top">
  <a class="brand" href="/">FlowForge</a>
  ${options.active === 'login'
    ? ''
    : html`<nav>${navLink('dashboard', '/', 'Dashboard')}${navLink('marketplace', '/marketplace', 'Marketplace')}${navLink('specs', '/specs', 'Spec files')}${navLink('events', '/events', 'Events')}</nav>
  <span class="live-state" id="live-state" title="live updates from the event stream">connecting…</span>
  ${options.loginRequired && options.session
    ? html`<form method="post" action="/logout" class="logout"><input type="hidden" name="csrf" value="${options.session.csrfToken}"><button type="submit">Log out</button></form>`
    : ''}`}
</header>
<main>
${body}
</main>
</body>
</html>`
}

/** A coloured label for a phase or a health. */
export function badge(kind: 'phase' | 'health' | 'status', value: string): Html {
  return html`<span class="badge ${kind}-${value}">${value}</span>`
}

/** "3m", "2h", "5d": how long ago, for tables. */
export function age(since: Date | null, now: number): string {
  if (since === null) return '–'
  const seconds = Math.max(0, Math.round((now - since.getTime()) / 1000))
  if (seconds < 60) return `${seconds}s`
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h`
  return `${Math.floor(seconds / 86_400)}d`
}

export function timeTag(when: Date | null, now: number): Html {
  if (when === null) return html`–`
  return html`<time datetime="${when.toISOString()}" title="${when.toISOString()}">${age(when, now)} ago</time>`
}

/** A plugin's source as a reader says it: "file specs/x.yaml", "API", "SQL", "adopted". */
export function sourceLabel(source: string): string {
  if (source.startsWith('file:')) return `file ${source.slice('file:'.length)}`
  if (source === 'api') return 'API'
  if (source === 'sql') return 'SQL'
  return source
}
