import { readFileSync, writeFileSync } from 'node:fs'

/** A process's resident memory now (VmRSS) or at its peak since start or the last reset (VmHWM), in MB. */
export const rssMb = (pid: number, field: 'VmRSS' | 'VmHWM') =>
  Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`${field}:\\s+(\\d+) kB`))![1]) / 1024

export const peakRssMb = (pid: number) => rssMb(pid, 'VmHWM')

/** Starts a process's peak (VmHWM) again from its current RSS, so that each measurement has its own. */
export const resetPeakRss = (pid: number) => writeFileSync(`/proc/${pid}/clear_refs`, '5')
