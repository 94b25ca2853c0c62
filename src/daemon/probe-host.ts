/** Where the manager reaches plugin ports: plugins published on every address (0.0.0.0, ::) are still reached on loopback. */
export function probeHostFor(bindAddress: string): string {
  return bindAddress === '0.0.0.0' || bindAddress === '::' ? '127.0.0.1' : bindAddress
}
