// The marketplace: Install sends the guide's POST /api/v1/plugins/install with the config and
// environment typed into the card's form, then opens the plugin's page; Update writes the
// catalog's manifest into the existing plugin (PUT with If-Match on the version just read).
(function () {
  'use strict'
  const { api, errorText, say } = window.FlowForge

  const typed = (input) => {
    const value = input.value
    if (input.dataset.type === 'number') return value === '' ? undefined : Number(value)
    if (input.dataset.type === 'boolean') return value === 'true' || value === '1' || value === 'yes'
    return value
  }

  for (const form of document.querySelectorAll('form.install-form')) {
    form.addEventListener('submit', async (event) => {
      event.preventDefault()
      const out = form.querySelector('.action-result')
      const manifest = JSON.parse(form.dataset.manifest)
      const config = {}
      const environment = {}
      for (const input of form.querySelectorAll('input[data-kind]')) {
        const value = typed(input)
        if (value === undefined || value === '') continue
        if (input.dataset.kind === 'config') config[input.dataset.key] = value
        else environment[input.dataset.key] = String(value)
      }
      const autoStart = form.querySelector('input[name="autoStart"]').checked
      say(out, 'installing…')
      const answer = await api('POST', '/api/v1/plugins/install', { body: { manifest, config, environment, autoStart } })
      if (!answer.ok) return say(out, errorText(answer), 'bad')
      say(out, 'installed: opening ' + answer.data.metadata.name, 'ok')
      window.location.assign('/plugin/' + encodeURIComponent(answer.data.metadata.name))
    })
  }

  for (const button of document.querySelectorAll('button[data-update]')) {
    button.addEventListener('click', async () => {
      const out = button.nextElementSibling
      const url = '/api/v1/plugins/' + encodeURIComponent(button.dataset.update)
      const live = await api('GET', url)
      if (!live.ok) return say(out, errorText(live), 'bad')
      const document_ = live.data
      document_.spec.manifest = JSON.parse(button.dataset.manifest)
      const written = await api('PUT', url, { body: document_, headers: { 'If-Match': '"' + document_.metadata.resourceVersion + '"' } })
      if (!written.ok) return say(out, errorText(written), 'bad')
      window.location.assign('/plugin/' + encodeURIComponent(button.dataset.update))
    })
  }
})()
