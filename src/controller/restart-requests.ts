// One-off restarts asked for while the plugin runs (its health checks failing, an operator's
// POST /restart), kept until the plan that answers one takes it. Shared by whoever asks
// (the health monitor, the API) and the controller, which is told to look at the plugin.
export class RestartRequests {
  private readonly pending = new Map<string, string>()
  private readonly listeners = new Set<(pluginId: string) => void>()

  /** Asks for one restart of the plugin's running container; a later reason replaces an earlier one. */
  request(pluginId: string, reason: string): void {
    this.pending.set(pluginId, reason)
    for (const listener of this.listeners) listener(pluginId)
  }

  /** The reason of the pending request, if any. */
  get(pluginId: string): string | undefined {
    return this.pending.get(pluginId)
  }

  /** The request is being answered: forget it. */
  take(pluginId: string): void {
    this.pending.delete(pluginId)
  }

  /** Told of every request as it is made; returns the unsubscribe function. */
  onRequest(listener: (pluginId: string) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }
}
