// CPU time and resident memory of processes from /proc (Linux), and the
// machine's busy time, so a run can tell its own CPU from other work's.
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second for /proc/PID/stat times (USER_HZ; 100 on Linux everywhere that matters). */
const HZ = 100;

/**
 * CPU seconds of a live process (all its threads) from one read of /proc/PID/stat: `total`
 * utime+stime, `kernel` stime alone (syscalls, and the loopback TCP work done in them); NaNs when gone.
 */
export function cpuTimes(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ")".
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    const kernel = Number(f[12]) / HZ; // field 15
    return { total: Number(f[11]) / HZ + kernel, kernel }; // fields 14 and 15
  } catch {
    return { total: Number.NaN, kernel: Number.NaN };
  }
}

/** utime+stime of a live process in seconds (all its threads), or NaN when it is gone. */
export function cpuSeconds(pid) {
  return cpuTimes(pid).total;
}

/**
 * CPU seconds of this process's reaped children (cutime+cstime): the way to
 * charge a short-lived load generator (wrk, h2load) that is gone, and its
 * /proc entry with it, by the time its figures are read.
 */
export function reapedChildrenCpuSeconds() {
  const s = readFileSync("/proc/self/stat", "utf8");
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return (Number(f[13]) + Number(f[14])) / HZ; // fields 16 and 17
}

/** {rssMb, hwmMb} of a live process (VmRSS now, VmHWM its peak), or NaNs. */
export function memoryMb(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? Number.NaN);
    return { rssMb: kb("VmRSS") / 1024, hwmMb: kb("VmHWM") / 1024 };
  } catch {
    return { rssMb: Number.NaN, hwmMb: Number.NaN };
  }
}

/**
 * {rssMb, pssMb, privateMb} of a live process from /proc/PID/smaps_rollup, or NaNs.
 * Resident size counts the node binary's pages (~44 MB here), which every
 * Node.js process on the host shares; PSS charges each process its share of
 * them, and private (anonymous) memory is what one more sidecar really adds.
 */
export function memoryDetailMb(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
    const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(s)?.[1] ?? Number.NaN);
    return { rssMb: kb("Rss") / 1024, pssMb: kb("Pss") / 1024, privateMb: kb("Anonymous") / 1024 };
  } catch {
    return { rssMb: Number.NaN, pssMb: Number.NaN, privateMb: Number.NaN };
  }
}

/**
 * Machine-wide CPU seconds from /proc/stat (all cores): busy, total, and the
 * interrupt share (irq + softirq: on loopback much of TCP's receive work runs
 * there and is charged to no process).
 */
export function machineCpuSeconds() {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = v[3] + (v[4] ?? 0); // idle + iowait
  return { busy: (total - idle) / HZ, total: total / HZ, irq: (v[5] + v[6]) / HZ };
}

/** CPU seconds of every live process: Map pid -> seconds. */
export function allProcessesCpu() {
  const out = new Map();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const c = cpuSeconds(name);
    if (Number.isFinite(c)) out.set(Number(name), c);
  }
  return out;
}

/**
 * Watches named PIDs over one measured run: CPU seconds used by each between
 * start() and stop(), and the largest resident size seen (sampled every
 * `everyMs`), plus the machine's busy CPU in the same window.
 */
export class RunSampler {
  constructor(pids, everyMs = 250) {
    this.pids = pids; // {name: pid}
    this.everyMs = everyMs;
  }

  start() {
    this.t0 = performance.now();
    this.cpu0 = Object.fromEntries(Object.entries(this.pids).map(([k, p]) => [k, cpuTimes(p)]));
    this.children0 = reapedChildrenCpuSeconds();
    this.machine0 = machineCpuSeconds();
    this.all0 = allProcessesCpu();
    this.maxRss = Object.fromEntries(Object.keys(this.pids).map((k) => [k, 0]));
    this.sample();
    this.timer = setInterval(() => this.sample(), this.everyMs);
  }

  sample() {
    for (const [k, p] of Object.entries(this.pids)) {
      const m = memoryMb(p).rssMb;
      if (m > this.maxRss[k]) this.maxRss[k] = m;
    }
  }

  /**
   * -> {seconds, cpu: {name: s}, kernelCpu: {name: s}, maxRssMb: {name: MB}, reapedChildrenCpu, machineBusyCpu, irqCpu, otherProcessesCpu}
   * otherProcessesCpu: CPU of processes that are not ours (not watched, not our children), i.e. other
   * work on the machine; processes that both started and ended inside the window are missed.
   */
  stop() {
    clearInterval(this.timer);
    this.sample();
    const seconds = (performance.now() - this.t0) / 1000;
    const cpu = {};
    const kernelCpu = {};
    for (const [k, p] of Object.entries(this.pids)) {
      const t = cpuTimes(p);
      cpu[k] = t.total - this.cpu0[k].total;
      kernelCpu[k] = t.kernel - this.cpu0[k].kernel;
    }
    const m = machineCpuSeconds();
    const ours = new Set(Object.values(this.pids).map(Number));
    let other = 0;
    for (const [pid, c] of allProcessesCpu()) if (!ours.has(pid)) other += c - (this.all0.get(pid) ?? 0);
    return {
      seconds,
      cpu,
      kernelCpu,
      maxRssMb: { ...this.maxRss },
      reapedChildrenCpu: reapedChildrenCpuSeconds() - this.children0,
      machineBusyCpu: m.busy - this.machine0.busy,
      irqCpu: m.irq - this.machine0.irq,
      otherProcessesCpu: other,
    };
  }
}
