// The plugin page: actions (through the API's own routes), the spec editor (checked by the
// console, written by PUT /api/v1/plugins/:name with If-Match), the live log tail and the
// metrics charts (uPlot).
(function () {
  'use strict'
  const { api, errorText, say } = window.FlowForge
  const head = document.getElementById('plugin')
  if (!head) return
  const name = head.dataset.plugin
  const base = '/api/v1/plugins/' + encodeURIComponent(name)
  const result = document.getElementById('action-result')

  // --- start, stop, restart, delete ---
  for (const button of document.querySelectorAll('#actions button[data-action]')) {
    button.addEventListener('click', async () => {
      const action = button.dataset.action
      if (action === 'delete') {
        document.getElementById('delete-dialog').showModal()
        return
      }
      say(result, action + '…')
      const answer = await api('POST', base + '/' + action)
      if (answer.ok) say(result, action === 'restart' ? 'restart requested' : 'desired state: ' + (action === 'start' ? 'running' : 'stopped'), 'ok')
      else say(result, errorText(answer), 'bad')
    })
  }
  const dialog = document.getElementById('delete-dialog')
  dialog.addEventListener('close', async () => {
    if (dialog.returnValue !== 'confirm') return
    const purge = document.getElementById('delete-purge').checked
    say(result, 'deleting…')
    const answer = await api('DELETE', base + (purge ? '?purge=true' : ''))
    if (!answer.ok) return say(result, errorText(answer), 'bad')
    say(result, name + ' is being uninstalled', 'ok')
    window.setTimeout(() => window.location.assign('/'), 1500)
  })

  // --- the spec editor ---
  const editor = document.getElementById('spec-editor')
  if (editor) {
    const gutter = document.getElementById('editor-gutter')
    const out = document.getElementById('spec-result')
    const apply = document.getElementById('spec-apply')
    let errorLines = new Set()
    let checked
    const drawGutter = () => {
      const count = editor.value.split('\n').length
      gutter.textContent = ''
      for (let line = 1; line <= count; line++) {
        const span = document.createElement('span')
        span.textContent = String(line)
        if (errorLines.has(line)) span.className = 'error-line'
        span.dataset.line = String(line)
        gutter.appendChild(span)
      }
      gutter.scrollTop = editor.scrollTop
    }
    editor.addEventListener('input', () => {
      checked = undefined
      apply.disabled = true
      drawGutter()
    })
    editor.addEventListener('scroll', () => (gutter.scrollTop = editor.scrollTop))
    drawGutter()

    const goTo = (line) => {
      const lines = editor.value.split('\n')
      const start = lines.slice(0, line - 1).reduce((sum, text) => sum + text.length + 1, 0)
      editor.focus()
      editor.setSelectionRange(start, start + (lines[line - 1] || '').length)
    }
    const showErrors = (errors) => {
      errorLines = new Set(errors.filter((error) => error.line).map((error) => error.line))
      drawGutter()
      out.textContent = ''
      const title = document.createElement('p')
      title.className = 'bad-text'
      title.textContent = errors.length === 1 ? '1 problem; nothing was written:' : errors.length + ' problems; nothing was written:'
      const list = document.createElement('ul')
      list.className = 'edit-errors'
      list.id = 'edit-errors'
      for (const error of errors) {
        const item = document.createElement('li')
        item.dataset.line = error.line ? String(error.line) : ''
        if (error.line) {
          const link = document.createElement('a')
          link.href = '#'
          link.textContent = 'line ' + error.line + (error.column ? ', column ' + error.column : '')
          link.addEventListener('click', (event) => {
            event.preventDefault()
            goTo(error.line)
          })
          item.appendChild(link)
          item.appendChild(document.createTextNode(': '))
        }
        item.appendChild(document.createTextNode((error.field ? error.field + ': ' : '') + error.message))
        list.appendChild(item)
      }
      out.append(title, list)
    }
    const showDiff = (check) => {
      errorLines = new Set()
      drawGutter()
      out.textContent = ''
      const summary = document.createElement('p')
      summary.id = 'diff-summary'
      summary.textContent = check.changed ? 'Valid. Apply would change:' : 'Valid, and nothing would change.'
      out.appendChild(summary)
      if (check.diff.length > 0) {
        const pre = document.createElement('pre')
        pre.className = 'diff'
        pre.id = 'spec-diff'
        for (const line of check.diff) {
          const span = document.createElement('span')
          span.textContent = line
          span.className = line.startsWith('@@') ? 'hunk' : line.startsWith('+') ? 'add' : line.startsWith('-') ? 'del' : ''
          pre.appendChild(span)
          if (!span.className) pre.appendChild(document.createTextNode('\n'))
        }
        out.appendChild(pre)
      }
      for (const note of check.notes) {
        const p = document.createElement('p')
        p.className = 'hint'
        p.textContent = 'Note: ' + note
        out.appendChild(p)
      }
    }
    const check = async () => {
      const answer = await api('POST', '/console/plugins/' + encodeURIComponent(name) + '/spec/check', { body: { yaml: editor.value } })
      if (!answer.ok) {
        say(out, errorText(answer), 'bad')
        return undefined
      }
      if (!answer.data.ok) showErrors(answer.data.errors)
      else showDiff(answer.data)
      return answer.data
    }
    document.getElementById('spec-check').addEventListener('click', async () => {
      checked = await check()
      apply.disabled = !(checked && checked.ok && checked.changed) || head.dataset.fileOwned === 'true'
    })
    document.getElementById('spec-reset').addEventListener('click', () => window.location.reload())
    apply.addEventListener('click', async () => {
      apply.disabled = true
      const verdict = checked && checked.ok ? checked : await check()
      if (!verdict || !verdict.ok) return
      const message = document.createElement('p')
      message.id = 'apply-result'
      out.prepend(message)
      // If-Match: the version read just now. resourceVersion also moves with status writes (a
      // health check every 30 s), so the spec's generation tells whether someone else changed
      // it since this editor opened: then the edit is refused, never written over theirs.
      for (let attempt = 1; attempt <= 3; attempt++) {
        const live = await api('GET', base)
        if (!live.ok) return say(message, errorText(live), 'bad')
        if (String(live.data.metadata.generation) !== head.dataset.generation) {
          return say(message, 'Refused: ' + name + ' was changed by someone else since this editor opened (generation ' + head.dataset.generation + ' → ' + live.data.metadata.generation + '). Nothing was written; Reset loads the current spec.', 'bad')
        }
        const written = await api('PUT', base, { body: verdict.document, headers: { 'If-Match': '"' + live.data.metadata.resourceVersion + '"' } })
        if (written.ok) {
          head.dataset.generation = String(written.data.metadata.generation)
          head.dataset.resourceVersion = written.data.metadata.resourceVersion
          editor.defaultValue = editor.value
          checked = undefined
          return say(message, 'Applied: generation ' + written.data.metadata.generation + '. The controller converges it now.', 'ok')
        }
        if (written.status !== 412) return say(message, errorText(written), 'bad')
      }
      say(message, 'Refused: the plugin kept changing; Reset and try again.', 'bad')
    })
  }

  // --- the log tail ---
  const logs = document.getElementById('log-lines')
  const logState = document.getElementById('log-state')
  const followButton = document.getElementById('log-follow')
  const pauseButton = document.getElementById('log-pause')
  const MAX_LINES = 2000
  let logStream
  let following = true
  let followedStart
  const facts = () => document.getElementById('status-facts')
  const appendLine = (text) => {
    const atBottom = logs.scrollHeight - logs.scrollTop - logs.clientHeight < 30
    logs.appendChild(document.createTextNode(text + '\n'))
    while (logs.childNodes.length > MAX_LINES) logs.removeChild(logs.firstChild)
    if (atBottom) logs.scrollTop = logs.scrollHeight
  }
  const openLogs = () => {
    const status = facts()
    if (!status || !status.dataset.container) {
      say(logState, 'no container yet: the tail starts when there is one')
      return
    }
    if (logStream) logStream.close()
    logs.textContent = ''
    followedStart = status.dataset.started
    logStream = new EventSource(base + '/logs?follow=true&tail=200')
    say(logState, 'following')
    logStream.onmessage = (message) => appendLine(message.data)
    logStream.addEventListener('end', () => {
      logStream.close()
      logStream = undefined
      say(logState, 'the container stopped; the tail goes on when it runs again')
    })
    logStream.onerror = () => {
      if (logStream && logStream.readyState === EventSource.CLOSED) {
        logStream = undefined
        say(logState, 'the log stream ended', 'bad')
      }
    }
  }
  const setFollowing = (value) => {
    following = value
    followButton.classList.toggle('active', value)
    pauseButton.classList.toggle('active', !value)
    followButton.textContent = value ? 'Following' : 'Follow'
    if (!value && logStream) {
      logStream.close()
      logStream = undefined
      say(logState, 'paused')
    }
    if (value) openLogs()
  }
  followButton.addEventListener('click', () => setFollowing(true))
  pauseButton.addEventListener('click', () => setFollowing(false))
  document.getElementById('log-clear').addEventListener('click', () => (logs.textContent = ''))
  // A restarted container (a crash, a restart) is followed again once the status says it runs.
  document.addEventListener('flowforge:refreshed', (event) => {
    if (event.target.id !== 'status' || !following) return
    const status = facts()
    if (status && status.dataset.phase === 'running' && (!logStream || status.dataset.started !== followedStart)) openLogs()
  })
  openLogs()

  // --- charts ---
  const charts = {}
  let range = '1h'
  const chartNote = document.getElementById('chart-note')
  const drawCharts = async () => {
    const answer = await api('GET', '/console/plugins/' + encodeURIComponent(name) + '/metrics?range=' + range)
    if (!answer.ok) return say(chartNote, errorText(answer), 'bad')
    const data = answer.data
    say(chartNote, data.at.length === 0 ? 'No samples in this range yet: resource samples come every HEALTH_INTERVAL, request counts every USAGE_FLUSH_INTERVAL.' : data.at.length + ' points, ' + data.bucketSeconds + ' s each')
    const specs = [
      ['chart-cpu', [{ label: 'CPU %', stroke: '#1f6feb', values: data.cpu }]],
      ['chart-memory', [{ label: 'MiB', stroke: '#8250df', values: data.memory }]],
      ['chart-requests', [{ label: 'requests', stroke: '#1a7f37', values: data.requests }, { label: 'errors', stroke: '#cf222e', values: data.errors }]],
    ]
    for (const [id, series] of specs) {
      const element = document.getElementById(id)
      if (charts[id]) charts[id].destroy()
      const width = Math.max(300, element.clientWidth || 360)
      charts[id] = new window.uPlot(
        { width, height: 170, scales: { x: { time: true, range: () => [data.from, data.to] } }, series: [{}, ...series.map((each) => ({ label: each.label, stroke: each.stroke, width: 1.5, spanGaps: false }))], axes: [{}, { size: 50 }], legend: { show: true } },
        [data.at, ...series.map((each) => each.values)],
        element,
      )
    }
  }
  for (const button of document.querySelectorAll('.range-switch button')) {
    button.addEventListener('click', () => {
      range = button.dataset.range
      document.querySelectorAll('.range-switch button').forEach((other) => other.classList.toggle('active', other === button))
      drawCharts()
    })
  }
  if (window.uPlot) {
    drawCharts()
    window.setInterval(drawCharts, 60_000)
  }
})()
