/**
 * What a test can see of a process from /proc (Linux): its resident set
 * size, and a sampler that keeps the peak while a test attacks it.
 */
import { readFileSync } from "node:fs";

/** The process's resident set size in MB (VmRSS in /proc/<pid>/status); 0 when it cannot be read (gone, not Linux). */
export function processRssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Samples a process's RSS and keeps the highest value seen in `peak`:
 * on demand (`sample()`) and, between `start()` and `stop()`, on a timer.
 * The pid is asked for at each sample, so the sampler can be made before
 * the process is started.
 */
export class RssSampler {
  /** The highest RSS (MB) sampled so far (since `start()`). */
  peak = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly pid: () => number) {}

  /** The RSS now (MB); raises `peak` if higher. */
  sample(): number {
    const r = processRssMb(this.pid());
    if (r > this.peak) this.peak = r;
    return r;
  }

  /** Resets `peak` to a first sample, which it returns, and samples every `intervalMs` until `stop()`. */
  start(intervalMs = 100): number {
    this.stop();
    this.peak = 0;
    const first = this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    return first;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
