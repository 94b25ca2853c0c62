// Every command of the README's walk-through works when pasted in order on a fresh clone.
import { spawn } from 'node:child_process'
import path from 'node:path'
import { expect, test } from 'vitest'
import { packageRoot } from '../../src/config.js'

test('the README walk-through runs as written on a fresh clone', async () => {
  const script = path.join(packageRoot(), 'scripts', 'readme-walkthrough.sh')
  const child = spawn('bash', [script], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  if (code !== 0) process.stdout.write(output)
  expect(code, 'the walk-through failed; its output is above').toBe(0)
  expect(output).toMatch(/walkthrough: all \d+ commands succeeded/)
})
