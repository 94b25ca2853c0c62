// One place turns notification payloads of every feed channel into listener calls.
import { describe, expect, test } from 'vitest'
import { ChangeFanout, PLUGIN_CHANGES_CHANNEL, PLUGIN_EVENTS_CHANNEL, PLUGIN_RESTARTS_CHANNEL } from '../../src/db/change-feed.js'
import { captureLogs } from '../helpers/log-capture.js'

describe('ChangeFanout.deliver', () => {
  test('each channel reaches its listener method; own events and malformed payloads do not', () => {
    const log = captureLogs('warn')
    const fanout = new ChangeFanout(log.logger, 'm1')
    const heard: string[] = []
    fanout.subscribe({
      onChange: (change) => heard.push(`change ${change.name} spec=${change.spec}`),
      onResync: () => undefined,
      onEvent: (id) => heard.push(`event ${id}`),
      onRestartRequest: (id, reason) => heard.push(`restart ${id} ${reason}`),
    })
    fanout.deliver(PLUGIN_CHANGES_CHANNEL, JSON.stringify({ op: 'update', id: 'u1', name: 'alpha', generation: 2, resourceVersion: 9, spec: true }))
    fanout.deliver(PLUGIN_EVENTS_CHANNEL, JSON.stringify({ id: 7, origin: 'm2' }))
    fanout.deliver(PLUGIN_EVENTS_CHANNEL, JSON.stringify({ id: 8, origin: '' }))
    fanout.deliver(PLUGIN_EVENTS_CHANNEL, JSON.stringify({ id: 9, origin: 'm1' }))
    fanout.deliver(PLUGIN_RESTARTS_CHANNEL, JSON.stringify({ id: 'u1', reason: 'asked' }))
    for (const channel of [PLUGIN_CHANGES_CHANNEL, PLUGIN_EVENTS_CHANNEL, PLUGIN_RESTARTS_CHANNEL]) {
      fanout.deliver(channel, 'not json')
      fanout.deliver(channel, JSON.stringify({ id: true }))
    }
    expect(heard).toEqual(['change alpha spec=true', 'event 7', 'event 8', 'restart u1 asked'])
    expect(log.messages()).toEqual([
      'ignoring a malformed plugin_changes notification',
      'ignoring a malformed plugin_changes notification',
      'ignoring a malformed plugin_events notification',
      'ignoring a malformed plugin_events notification',
      'ignoring a malformed plugin_restarts notification',
      'ignoring a malformed plugin_restarts notification',
    ])
  })
})
