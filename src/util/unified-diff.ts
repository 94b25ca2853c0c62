// A unified diff (diff -u) of two texts, line by line, for forgectl diff and the web console's edit preview. The documents are
// small, so a plain longest-common-subsequence table is enough (common ends trimmed first).

export interface UnifiedDiffOptions {
  oldLabel: string
  newLabel: string
  /** Unchanged lines shown around each change. Default 3, as diff -u. */
  context?: number
}

interface Line {
  kind: ' ' | '-' | '+'
  text: string
}

/** The diff's lines (---, +++, @@ hunks); empty when the texts are equal. */
export function unifiedDiff(oldText: string, newText: string, options: UnifiedDiffOptions): string[] {
  const lines = diffLines(splitLines(oldText), splitLines(newText))
  const hunks = groupHunks(lines, options.context ?? 3)
  if (hunks.length === 0) return []
  return [`--- ${options.oldLabel}`, `+++ ${options.newLabel}`, ...hunks.flatMap((hunk) => formatHunk(lines, hunk))]
}

function splitLines(text: string): string[] {
  if (text === '') return []
  return (text.endsWith('\n') ? text.slice(0, -1) : text).split('\n')
}

function diffLines(before: string[], after: string[]): Line[] {
  let prefix = 0
  while (prefix < before.length && prefix < after.length && before[prefix] === after[prefix]) prefix += 1
  let suffix = 0
  while (
    suffix < before.length - prefix &&
    suffix < after.length - prefix &&
    before[before.length - 1 - suffix] === after[after.length - 1 - suffix]
  ) {
    suffix += 1
  }
  const oldMiddle = before.slice(prefix, before.length - suffix)
  const newMiddle = after.slice(prefix, after.length - suffix)
  return [
    ...before.slice(0, prefix).map((text): Line => ({ kind: ' ', text })),
    ...diffMiddle(oldMiddle, newMiddle),
    ...before.slice(before.length - suffix).map((text): Line => ({ kind: ' ', text })),
  ]
}

/** Longest common subsequence; where there is a choice, removals come before additions, as in diff. */
function diffMiddle(before: string[], after: string[]): Line[] {
  const columns = after.length + 1
  // common[i * columns + j]: length of the LCS of before[i..] and after[j..].
  const common = new Uint32Array((before.length + 1) * columns)
  for (let i = before.length - 1; i >= 0; i--) {
    for (let j = after.length - 1; j >= 0; j--) {
      common[i * columns + j] =
        before[i] === after[j] ? common[(i + 1) * columns + j + 1]! + 1 : Math.max(common[(i + 1) * columns + j]!, common[i * columns + j + 1]!)
    }
  }
  const lines: Line[] = []
  let i = 0
  let j = 0
  while (i < before.length && j < after.length) {
    if (before[i] === after[j]) {
      lines.push({ kind: ' ', text: before[i]! })
      i += 1
      j += 1
    } else if (common[(i + 1) * columns + j]! >= common[i * columns + j + 1]!) {
      lines.push({ kind: '-', text: before[i]! })
      i += 1
    } else {
      lines.push({ kind: '+', text: after[j]! })
      j += 1
    }
  }
  for (; i < before.length; i++) lines.push({ kind: '-', text: before[i]! })
  for (; j < after.length; j++) lines.push({ kind: '+', text: after[j]! })
  return lines
}

interface Hunk {
  start: number
  end: number
}

/** Ranges of `lines` around changes; changes closer than twice the context share a hunk. */
function groupHunks(lines: Line[], context: number): Hunk[] {
  const hunks: Hunk[] = []
  lines.forEach((line, index) => {
    if (line.kind === ' ') return
    const start = Math.max(0, index - context)
    const end = Math.min(lines.length, index + context + 1)
    const last = hunks[hunks.length - 1]
    if (last && start <= last.end) last.end = end
    else hunks.push({ start, end })
  })
  return hunks
}

function formatHunk(lines: Line[], hunk: Hunk): string[] {
  const before = lines.slice(0, hunk.start)
  const body = lines.slice(hunk.start, hunk.end)
  const oldCount = body.filter((line) => line.kind !== '+').length
  const newCount = body.filter((line) => line.kind !== '-').length
  // 1-based; an empty side names the line before it (diff -u writes -0,0 for an empty file).
  const oldStart = before.filter((line) => line.kind !== '+').length + (oldCount > 0 ? 1 : 0)
  const newStart = before.filter((line) => line.kind !== '-').length + (newCount > 0 ? 1 : 0)
  return [`@@ -${oldStart},${oldCount} +${newStart},${newCount} @@`, ...body.map((line) => line.kind + line.text)]
}
