/** Reading a process's CPU time from /proc (bench helpers). */
import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU time of all a process's threads in seconds, from /proc/<pid>/task/<tid>/schedstat
 * (nanoseconds on CPU: fine enough for the few microseconds a lone packet costs, where the
 * 10 ms ticks of /proc/<pid>/stat are not). NaN when the process is gone.
 */
export function cpuSecondsFine(pid: number): number {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    }
    return ns / 1e9;
  } catch {
    return NaN;
  }
}
