// /proc/<pid>/stat (Linux, proc(5)), read in one place: the command name (field 2) may hold
// spaces and parentheses, so the fields are taken after the last ')'.
import { readFileSync } from 'node:fs'

/** Linux reports CPU times in clock ticks of 1/100 s (USER_HZ, `getconf CLK_TCK`). */
export const CLOCK_TICKS_PER_SECOND = 100

/**
 * The fields after the command name: index 0 is the state (field 3 of proc(5)), index 11
 * utime (14), 12 stime (15), 19 starttime (22). Undefined when there is no such process or
 * no procfs.
 */
export function procStatFields(pid: number | string): string[] | undefined {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
}

/** CPU time (user + system) the process has used so far, in seconds; undefined when it is gone. */
export function processCpuSeconds(pid: number | string): number | undefined {
  const fields = procStatFields(pid)
  return fields ? (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND : undefined
}
