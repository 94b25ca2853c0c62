// FlowForge console, on every page: the API helper (the session cookie goes by itself; the
// CSRF token from the page's meta tag goes in X-CSRF-Token), and live regions. An element
// with data-live="<fragment URL>" is fetched again whenever the event stream
// (/api/v1/events/stream) carries an event it cares about (data-live-plugin: of that plugin;
// data-live-types: of types with these prefixes), every data-live-every seconds, and after
// the stream reconnects. data-live-query appends the page's own query (the filters).
(function () {
  'use strict'
  const csrfMeta = document.querySelector('meta[name="csrf-token"]')
  const csrf = csrfMeta ? csrfMeta.getAttribute('content') : undefined

  async function api(method, url, options) {
    const { body, headers } = options || {}
    const init = { method, credentials: 'same-origin', headers: Object.assign({ accept: 'application/json' }, headers || {}) }
    if (csrf) init.headers['X-CSRF-Token'] = csrf
    if (body !== undefined) {
      if (!init.headers['Content-Type']) init.headers['Content-Type'] = 'application/json'
      init.body = typeof body === 'string' ? body : JSON.stringify(body)
    }
    const response = await fetch(url, init)
    const type = response.headers.get('content-type') || ''
    const data = type.includes('json') ? await response.json().catch(() => null) : await response.text()
    return { ok: response.ok, status: response.status, data, headers: response.headers }
  }

  function errorText(result) {
    const error = result.data && result.data.error
    if (!error) return 'HTTP ' + result.status
    const details = (error.details || []).map((detail) => detail.field + ': ' + detail.message).join('; ')
    return error.message + (details ? ' (' + details + ')' : '')
  }

  function say(element, text, kind) {
    if (!element) return
    element.textContent = text
    element.classList.remove('ok', 'bad')
    if (kind) element.classList.add(kind)
  }

  window.FlowForge = { api, errorText, say, csrf }

  const state = document.getElementById('live-state')
  const regions = Array.from(document.querySelectorAll('[data-live]'))
  const setState = (text, kind) => {
    if (!state) return
    state.textContent = text
    state.classList.remove('ok', 'bad')
    state.classList.add(kind)
  }
  const needsStream = regions.length > 0 || document.querySelector('[data-wants-events]')
  if (!needsStream) {
    if (state) state.hidden = true
    return
  }

  const MIN_GAP_MS = 250
  const flights = new Map()
  function refresh(region) {
    let flight = flights.get(region)
    if (!flight) {
      flight = { running: false, again: false }
      flights.set(region, flight)
    }
    if (flight.running) {
      flight.again = true
      return
    }
    flight.running = true
    const url = region.dataset.live + (region.dataset.liveQuery ? window.location.search : '')
    fetch(url, { credentials: 'same-origin', headers: { accept: 'text/html' } })
      .then(async (response) => {
        if (response.status === 401) {
          setState('session ended: reload to log in', 'bad')
          return
        }
        if (!response.ok) return
        region.innerHTML = await response.text()
        region.dispatchEvent(new CustomEvent('flowforge:refreshed', { bubbles: true }))
      })
      .catch(() => undefined)
      .finally(() => {
        window.setTimeout(() => {
          flight.running = false
          if (flight.again) {
            flight.again = false
            refresh(region)
          }
        }, MIN_GAP_MS)
      })
  }

  function cares(region, event) {
    const plugin = region.dataset.livePlugin
    if (plugin && event.forgehookId !== plugin && event.pluginId !== plugin) return false
    const types = region.dataset.liveTypes
    if (types && !types.split(',').some((prefix) => event.type.startsWith(prefix))) return false
    return true
  }

  const stream = new EventSource('/api/v1/events/stream')
  stream.onopen = () => {
    setState('live', 'ok')
    // Events sent while the stream was down are gone, and so are those sent between the
    // page's render and the stream's first open: read every region again either way.
    regions.forEach(refresh)
  }
  stream.onerror = () => setState('reconnecting…', 'bad')
  stream.onmessage = (message) => {
    let event
    try {
      event = JSON.parse(message.data)
    } catch {
      return
    }
    for (const region of regions) if (cares(region, event)) refresh(region)
    document.dispatchEvent(new CustomEvent('flowforge:event', { detail: event }))
  }
  for (const region of regions) {
    const every = Number(region.dataset.liveEvery)
    if (every > 0) window.setInterval(() => refresh(region), every * 1000)
  }
  window.addEventListener('pagehide', () => stream.close())
})()
