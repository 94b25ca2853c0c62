import path from 'node:path'
import { packageRoot } from '../../src/config.js'

export const root = packageRoot()

/**
 * How tests run forgectl: node itself with tsx's loader, so that the pid we signal is the
 * daemon's own (the tsx binary would be a wrapper: SIGKILL would leave the daemon running).
 */
export function forgectlCommand(...args: string[]): [string, string[]] {
  return [process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'forgectl.ts'), ...args]]
}
