// The HTTP API: one Hono app built from ApiDependencies only. Order matters: the browser
// checks first (browser-guard.ts), the open observability routes, then authentication and
// the body limit, then the routes
// (the more specific stream and log routes before the plugin and event routes they share a prefix with).
import { Hono, type Context } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { apiAuthentication } from './api-authentication.js'
import { bearerAuth } from './bearer-auth.js'
import { hostGuard, originGuard, securityHeaders } from './browser-guard.js'
import type { ApiDependencies } from './deps.js'
import { ApiError, errorBody, toErrorResponse } from './errors.js'
import { openApiRoutes } from './openapi.js'
import { proxyRoutes } from './proxy.js'
import { MAX_BODY_BYTES } from './request.js'
import { eventRoutes } from './routes/events.js'
import { logRoutes } from './routes/logs.js'
import { observabilityRoutes } from './routes/observability.js'
import { pluginRoutes } from './routes/plugins.js'
import { rolloutRoutes } from './routes/rollouts.js'
import { streamRoutes } from './routes/stream.js'
import { DEFAULT_MAX_STREAMS, StreamLimit } from './stream-limit.js'

export function createApp(deps: ApiDependencies): Hono {
  const app = new Hono()

  // Before anything else, on every route: a Host that is not ours (DNS rebinding) is refused,
  // and every answer but a plugin's own proxied content gets the API's security headers.
  app.use('*', securityHeaders())
  app.use('*', hostGuard({ allowedHosts: deps.allowedHosts ?? [] }))
  // A page of another origin (or a sandboxed plugin page) gets nothing from /api, token or not.
  app.use('/api/*', originGuard())

  // /healthz, /readyz and /metrics stay open: probes and scrapers carry no token.
  app.route('/', observabilityRoutes(deps))

  // The token, or a web console session (its cookie, and its CSRF token on writes) on /api;
  // a plugin's proxied pages take the token only.
  app.use('/api/*', apiAuthentication({ apiToken: deps.apiToken, sessions: deps.console?.sessions }))
  if (deps.apiToken !== undefined) app.use('/plugins/*', bearerAuth(deps.apiToken))
  // Only the API's own JSON bodies are capped; proxied plugin traffic streams through as sent.
  app.use('/api/*', bodyLimit({ maxSize: MAX_BODY_BYTES, onError: rejectLargeBody }))

  // One cap for every live stream: event WebSockets, event SSE and followed logs.
  const streams = new StreamLimit(deps.maxStreams ?? DEFAULT_MAX_STREAMS)
  app.route('/', streamRoutes(deps, { streams }))
  app.route('/', logRoutes(deps, { streams }))
  app.route('/', pluginRoutes(deps))
  app.route('/', rolloutRoutes(deps))
  app.route('/', eventRoutes(deps))
  app.route('/', openApiRoutes())
  // The web console's pages (src/web): beside the API, on its own paths, with its own headers.
  if (deps.console) app.route('/', deps.console.routes)
  app.route('/', proxyRoutes(deps))

  app.onError(function answerError(error, c) {
    const answer = toErrorResponse(error)
    if (answer.logLevel !== undefined) deps.logger[answer.logLevel]({ err: error, method: c.req.method, path: c.req.path }, 'request failed')
    for (const [name, value] of Object.entries(answer.headers)) c.header(name, value)
    return c.json(answer.body, answer.status)
  })
  app.notFound((c) => c.json(errorBody('not_found', `no route for ${c.req.method} ${c.req.path}`), 404))
  return app
}

function rejectLargeBody(_c: Context): never {
  throw new ApiError(413, 'payload_too_large', `the request body is larger than ${MAX_BODY_BYTES / (1024 * 1024)} MiB`)
}
