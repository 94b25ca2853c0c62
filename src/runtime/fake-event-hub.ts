// The fake engine's event stream: every event of a managed container goes to each open
// events() stream, from the moment it opened, as the Docker driver delivers them.

import { isManaged, type RuntimeEvent, type RuntimeStreamItem } from './container-runtime.js'
import { EventChannel } from './event-channel.js'
import type { FakeContainer } from './fake-containers.js'

export class FakeEventHub {
  private readonly channels = new Set<EventChannel>()

  /** A stream of what is published from now until `signal` aborts. */
  subscribe(signal: AbortSignal): AsyncIterable<RuntimeStreamItem> {
    const channel = new EventChannel(() => this.channels.delete(channel))
    if (signal.aborted) {
      channel.close()
      return channel
    }
    this.channels.add(channel)
    signal.addEventListener('abort', () => channel.close(), { once: true })
    return channel
  }

  /** Like Docker's label-filtered stream: events of unmanaged containers reach nobody. */
  publish(container: FakeContainer, action: string, extra: Pick<RuntimeEvent, 'health' | 'exitCode'> = {}): void {
    if (!isManaged(container)) return
    const event: RuntimeEvent = { action, containerId: container.id, name: container.name, labels: { ...container.labels }, time: new Date(), ...extra }
    for (const channel of this.channels) channel.push({ type: 'event', event })
  }

  /** Every open stream learns that events may have been missed. */
  resync(reason: string): void {
    for (const channel of this.channels) channel.push({ type: 'resync', reason })
  }
}
