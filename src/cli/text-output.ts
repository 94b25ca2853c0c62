// Where forgectl writes (stdout or stderr, or a test's buffer). Its own file: the output
// helpers, the API client and the command context all use it, and none of them should need
// another to get it.

export interface TextOutput {
  write(text: string): void
  /** A terminal: progress lines are redrawn in place, diffs are coloured. */
  isTTY: boolean
  /** The terminal's width, when it is one. */
  columns?: number
}
