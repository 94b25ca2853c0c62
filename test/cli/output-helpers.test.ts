// forgectl's output pieces on their own: ages, tables, the unified diff, the SSE reader and the
// progress lines (redrawn in place on a terminal, printed on change otherwise).
import { describe, expect, test } from 'vitest'
import { formatAge, formatTable } from '../../src/cli/output.js'
import { readServerSentEvents, type SseMessage } from '../../src/cli/sse.js'
import type { TextOutput } from '../../src/cli/text-output.js'
import { unifiedDiff } from '../../src/util/unified-diff.js'
import { ProgressLines } from '../../src/cli/wait-for-plugins.js'

describe('formatAge', () => {
  const now = Date.parse('2025-01-10T12:00:00Z')
  test.each([
    ['2025-01-10T11:59:15Z', '45s'],
    ['2025-01-10T11:48:00Z', '12m'],
    ['2025-01-10T09:00:00Z', '3h'],
    ['2025-01-05T12:00:00Z', '5d'],
    ['2022-12-01T12:00:00Z', '2y'],
    // A client clock slightly behind the server's.
    ['2025-01-10T12:00:03Z', '0s'],
  ])('%s is %s old', (timestamp, age) => {
    expect(formatAge(timestamp, now)).toBe(age)
  })

  test('no time is <unknown>', () => {
    expect(formatAge(null, now)).toBe('<unknown>')
  })
})

test('formatTable aligns columns with three spaces and no trailing blanks', () => {
  expect(formatTable([['NAME', 'PHASE', 'AGE'], ['a-long-name', 'running', '5s'], ['b', 'error', '12m']])).toEqual([
    'NAME          PHASE     AGE',
    'a-long-name   running   5s',
    'b             error     12m',
  ])
})

describe('unifiedDiff', () => {
  test('equal texts have no diff', () => {
    expect(unifiedDiff('a\nb\n', 'a\nb\n', { oldLabel: 'old', newLabel: 'new' })).toEqual([])
  })

  test('a change is shown with three lines of context and diff -u hunk headers', () => {
    const before = 'one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\n'
    const after = 'one\ntwo\nthree\nfour\nfive\nSIX\nseven\neight\nnine\nten\neleven\n'
    expect(unifiedDiff(before, after, { oldLabel: 'old', newLabel: 'new' })).toEqual([
      '--- old',
      '+++ new',
      '@@ -3,8 +3,9 @@',
      ' three',
      ' four',
      ' five',
      '-six',
      '+SIX',
      ' seven',
      ' eight',
      ' nine',
      ' ten',
      '+eleven',
    ])
  })

  test('a new file is all added from line 0', () => {
    expect(unifiedDiff('', 'a\nb\n', { oldLabel: '/dev/null', newLabel: 'new' })).toEqual(['--- /dev/null', '+++ new', '@@ -0,0 +1,2 @@', '+a', '+b'])
  })
})

describe('readServerSentEvents', () => {
  async function collect(chunks: string[]): Promise<SseMessage[]> {
    const encoder = new TextEncoder()
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(encoder.encode(chunk))
        controller.close()
      },
    })
    const messages: SseMessage[] = []
    for await (const message of readServerSentEvents(body)) messages.push(message)
    return messages
  }

  test('joins messages split across chunks, skips comments, keeps empty data lines', async () => {
    const messages = await collect([': subscribed\n\nid: 7\nda', 'ta: {"a":1}\n\n', 'data: line one\r\ndata: line two\r\n\r\n', 'data:\n\nevent: end\ndata: bye\n\n'])
    expect(messages).toEqual([
      { event: 'message', data: '{"a":1}', id: '7' },
      { event: 'message', data: 'line one\nline two', id: '7' },
      { event: 'message', data: '', id: '7' },
      { event: 'end', data: 'bye', id: '7' },
    ])
  })
})

describe('ProgressLines', () => {
  function output(isTTY: boolean): TextOutput & { text: string } {
    const sink = { text: '', isTTY, write: (text: string) => void (sink.text += text) }
    return sink
  }

  test('on a terminal, redraws every line in place', () => {
    const terminal = output(true)
    const progress = new ProgressLines(terminal)
    progress.update([['plugin/a', 'installing'], ['plugin/bb', 'installing']])
    progress.update([['plugin/a', 'running'], ['plugin/bb', 'installing']])
    expect(terminal.text).toBe(
      '\r\x1b[2Kplugin/a    installing\n\r\x1b[2Kplugin/bb   installing\n' + '\x1b[2A' + '\r\x1b[2Kplugin/a    running\n\r\x1b[2Kplugin/bb   installing\n',
    )
  })

  test('elsewhere, prints a line only when its plugin changed', () => {
    const log = output(false)
    const progress = new ProgressLines(log)
    progress.update([['plugin/a', 'installing'], ['plugin/bb', 'installing']])
    progress.update([['plugin/a', 'installing'], ['plugin/bb', 'installing']])
    progress.update([['plugin/a', 'running'], ['plugin/bb', 'installing']])
    expect(log.text).toBe('plugin/a    installing\nplugin/bb   installing\nplugin/a    running\n')
  })
})
