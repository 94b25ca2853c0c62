// A queue of stream items for one consumer of an in-memory event stream.

import type { RuntimeStreamItem } from './container-runtime.js'

/**
 * One consumer's queue of stream items. Iteration ends when close() is called (the
 * consumer's signal aborted) or the consumer stops iterating; either way `onClose` runs
 * once, so the producer stops pushing to a queue nobody reads.
 */
export class EventChannel implements AsyncIterable<RuntimeStreamItem> {
  private readonly items: RuntimeStreamItem[] = []
  private wake: (() => void) | undefined
  private closed = false

  constructor(private readonly onClose: () => void = () => undefined) {}

  push(item: RuntimeStreamItem): void {
    if (this.closed) return
    this.items.push(item)
    this.wake?.()
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.items.length = 0
    this.wake?.()
    this.onClose()
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<RuntimeStreamItem> {
    try {
      while (!this.closed) {
        const item = this.items.shift()
        if (item) {
          yield item
          continue
        }
        await new Promise<void>((resolve) => {
          this.wake = resolve
        })
        this.wake = undefined
      }
    } finally {
      this.close()
    }
  }
}
