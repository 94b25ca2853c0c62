// Container logs on the fake engine: the open followLogs iterations of each container, and
// the text helpers that turn written text into lines and lines back into text.

/** Open followLogs iterations by container id. */
export class LogFollowers {
  private readonly byContainerId = new Map<string, Set<LogFollower>>()

  open(containerId: string): LogFollower {
    const follower = new LogFollower()
    const followers = this.byContainerId.get(containerId) ?? new Set<LogFollower>()
    this.byContainerId.set(containerId, followers.add(follower))
    return follower
  }

  close(containerId: string, follower: LogFollower): void {
    const followers = this.byContainerId.get(containerId)
    followers?.delete(follower)
    if (followers?.size === 0) this.byContainerId.delete(containerId)
  }

  /** The container wrote `text`; every open iteration reads it. */
  write(containerId: string, text: string): void {
    for (const follower of this.byContainerId.get(containerId) ?? []) follower.push(text)
  }

  /** The container stopped: every open iteration ends once it has read what was written. */
  end(containerId: string): void {
    for (const follower of this.byContainerId.get(containerId) ?? []) follower.end()
  }
}

/** One followLogs iteration: text waiting to be read, and a wake-up for the reader. */
export class LogFollower {
  private readonly chunks: string[] = []
  private ended = false
  private wake: (() => void) | undefined

  push(text: string): void {
    if (this.ended || !text) return
    this.chunks.push(text)
    this.wake?.()
  }

  /** The container stopped (what it wrote before is still read), or the reader went away (`discard`). */
  end(options: { discard?: boolean } = {}): void {
    this.ended = true
    if (options.discard) this.chunks.length = 0
    this.wake?.()
  }

  /** The next chunk; undefined once ended and read to the end. */
  async next(): Promise<string | undefined> {
    for (;;) {
      const chunk = this.chunks.shift()
      if (chunk !== undefined) return chunk
      if (this.ended) return undefined
      await new Promise<void>((resolve) => {
        this.wake = resolve
      })
      this.wake = undefined
    }
  }
}

export function tailText(lines: string[], tail: number): string {
  const last = tail <= 0 ? [] : lines.slice(-tail)
  return last.map((line) => `${line}\n`).join('')
}

export function splitLines(text: string): string[] {
  return text.split('\n').filter((line, index, lines) => line.length > 0 || index < lines.length - 1)
}
