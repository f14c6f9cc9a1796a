import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { isWeftError } from "@weft/core";
import { VirtualClock } from "@weft/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { HealthChecker, type HealthCheckerOptions } from "./checker.js";
import type { ProbeFn } from "./probe.js";
import { MAX_OUTPUT_CHARS, type ProbeOptions, type ProbeResult } from "./result.js";

const INTERVAL = 10_000;
const TIMEOUT = 2_000;

const PASS: ProbeResult = { status: "passing", output: "ok" };
const WARN: ProbeResult = { status: "warning", output: "slow" };
const CRIT: ProbeResult = { status: "critical", output: "down" };

/** A probe the test scripts: each call takes the next result, or waits for `settle` when manual. */
class FakeProbe {
  calls: {
    at: number;
    signal: AbortSignal | undefined;
    settle: (r: ProbeResult) => void;
    fail: (e: unknown) => void;
  }[] = [];
  script: ProbeResult[] = [];
  manual = false;
  /** Probes started and not finished: must never exceed 1. */
  inFlight = 0;
  maxInFlight = 0;

  constructor(private readonly clock: VirtualClock) {}

  readonly fn: ProbeFn = (_spec, _target, _timeout, opts?: ProbeOptions) => {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    return new Promise<ProbeResult>((resolve, reject) => {
      const done = () => this.inFlight--;
      const call = {
        at: this.clock.now(),
        signal: opts?.signal,
        settle: (r: ProbeResult) => {
          done();
          resolve(r);
        },
        fail: (e: unknown) => {
          done();
          reject(e);
        },
      };
      this.calls.push(call);
      if (!this.manual) call.settle(this.script.length > 1 ? this.script.shift()! : (this.script[0] ?? PASS));
    });
  };
}

interface Report {
  at: number;
  r: ProbeResult;
}

const checkers: HealthChecker[] = [];
afterEach(() => {
  for (const c of checkers.splice(0)) c.dispose();
});

function setup(over: Partial<HealthCheckerOptions> = {}) {
  const clock = new VirtualClock();
  const t0 = clock.now();
  const fake = new FakeProbe(clock);
  const reports: Report[] = [];
  const checker = new HealthChecker({
    spec: { kind: "http", path: "/healthz" },
    target: { host: "127.0.0.1", port: 8080 },
    intervalMs: INTERVAL,
    timeoutMs: TIMEOUT,
    // Far beyond the horizon of most tests; heartbeat tests set their own.
    reportEveryMs: 600_000,
    clock,
    probe: fake.fn,
    report: (r) => {
      reports.push({ at: clock.now() - t0, r });
    },
    ...over,
  });
  checkers.push(checker);
  return { clock, t0, fake, reports, checker, since: (at: number) => at - t0 };
}

/** Lets promise chains run (the checker reacts to a probe's result on a later microtask). */
async function flush(turns = 10): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Advances virtual time in steps, letting async work run after each step. */
async function step(clock: VirtualClock, ms: number, stepMs = 1_000): Promise<void> {
  for (let left = ms; left > 0; left -= stepMs) {
    clock.advance(Math.min(stepMs, left));
    await flush();
  }
}

describe("HealthChecker scheduling", () => {
  it("probes at start, then intervalMs after each probe ends", async () => {
    const { clock, fake, checker, since } = setup();
    checker.start();
    await flush();
    expect(fake.calls.map((c) => since(c.at))).toEqual([0]);
    await step(clock, INTERVAL - 1, INTERVAL - 1);
    expect(fake.calls).toHaveLength(1);
    await step(clock, 1);
    expect(fake.calls.map((c) => since(c.at))).toEqual([0, INTERVAL]);
    await step(clock, 3 * INTERVAL);
    expect(fake.calls.map((c) => since(c.at))).toEqual([
      0,
      INTERVAL,
      2 * INTERVAL,
      3 * INTERVAL,
      4 * INTERVAL,
    ]);
  });

  it("never overlaps probes when one is slower than the interval, and waits a full interval after it", async () => {
    const { clock, fake, checker, since } = setup();
    fake.manual = true;
    checker.start();
    await flush();
    await step(clock, 5 * INTERVAL);
    expect(fake.calls).toHaveLength(1);
    fake.calls[0]!.settle(PASS);
    await flush();
    await step(clock, INTERVAL - 1_000);
    expect(fake.calls).toHaveLength(1);
    await step(clock, 1_000);
    expect(fake.calls.map((c) => since(c.at))).toEqual([0, 6 * INTERVAL]);
    expect(fake.maxInFlight).toBe(1);
  });

  it("does nothing on a second start, or a start after dispose", async () => {
    const a = setup();
    a.checker.start();
    a.checker.start();
    await flush();
    expect(a.fake.calls).toHaveLength(1);
    const b = setup();
    b.checker.dispose();
    b.checker.start();
    await step(b.clock, 2 * INTERVAL);
    expect(b.fake.calls).toHaveLength(0);
    expect(b.clock.pending).toBe(0);
  });
});

describe("HealthChecker reporting", () => {
  it("reports the first result at once and again only when status or output changes", async () => {
    const { clock, fake, reports, checker } = setup();
    fake.script = [PASS, PASS, { status: "passing", output: "ok, 2 conns" }, CRIT, CRIT, WARN];
    checker.start();
    await flush();
    await step(clock, 5 * INTERVAL, INTERVAL);
    expect(reports).toEqual([
      { at: 0, r: PASS },
      { at: 2 * INTERVAL, r: { status: "passing", output: "ok, 2 conns" } },
      { at: 3 * INTERVAL, r: CRIT },
      { at: 5 * INTERVAL, r: WARN },
    ]);
    expect(checker.current).toEqual(WARN);
  });

  it("applies success_before_passing and failures_before_critical", async () => {
    const { clock, fake, reports, checker } = setup({ successBeforePassing: 3, failuresBeforeCritical: 2 });
    fake.script = [PASS, CRIT, CRIT, PASS, WARN, CRIT, PASS, PASS, PASS, PASS];
    const seen: (string | undefined)[] = [];
    checker.start();
    await flush();
    seen.push(checker.current?.status);
    for (let i = 1; i < 10; i++) {
      await step(clock, INTERVAL, INTERVAL);
      seen.push(checker.current?.status);
    }
    expect(seen).toEqual([
      "passing", // first result applies at once (Consul)
      "passing", // 1 failure of 2
      "critical",
      "critical", // 1 success of 3
      "critical", // 2 (warning counts as a success)
      "critical", // a failure resets the successes
      "critical",
      "critical",
      "passing", // 3 in a row
      "passing",
    ]);
    expect(reports.map((r) => [r.at / INTERVAL, r.r.status])).toEqual([
      [0, "passing"],
      [2, "critical"],
      [8, "passing"],
    ]);
  });

  it("applies the first result at once even when it is a failure below the threshold", async () => {
    const { fake, reports, checker } = setup({ failuresBeforeCritical: 3 });
    fake.script = [CRIT];
    checker.start();
    await flush();
    expect(checker.current).toEqual(CRIT);
    expect(reports).toEqual([{ at: 0, r: CRIT }]);
  });

  it("is undefined before the first probe ends", async () => {
    const { fake, checker, reports } = setup();
    fake.manual = true;
    expect(checker.current).toBeUndefined();
    checker.start();
    await flush();
    expect(checker.current).toBeUndefined();
    expect(reports).toHaveLength(0);
  });

  it("sends a heartbeat every reportEveryMs without any change", async () => {
    const { clock, reports, checker } = setup({ reportEveryMs: 25_000 });
    checker.start();
    await flush();
    await step(clock, 100_000);
    expect(reports.map((r) => r.at)).toEqual([0, 25_000, 50_000, 75_000, 100_000]);
    expect(reports.every((r) => r.r.status === "passing")).toBe(true);
  });

  it("counts the heartbeat from the last report, so a change postpones it", async () => {
    const { clock, fake, reports, checker } = setup({ reportEveryMs: 25_000 });
    fake.script = [PASS, PASS, CRIT];
    checker.start();
    await flush();
    await step(clock, 60_000);
    expect(reports.map((r) => [r.at, r.r.status])).toEqual([
      [0, "passing"],
      [20_000, "critical"],
      [45_000, "critical"],
    ]);
  });

  it("keeps heartbeating while a probe hangs, and more often than the interval if asked", async () => {
    const { clock, fake, reports, checker } = setup({ intervalMs: 10_000, reportEveryMs: 3_000 });
    fake.manual = true;
    checker.start();
    await flush();
    fake.calls[0]!.settle(PASS);
    await flush();
    await step(clock, 10_000); // the second probe starts and hangs
    await step(clock, 10_000);
    expect(fake.calls).toHaveLength(2);
    expect(reports.map((r) => r.at)).toEqual([0, 3_000, 6_000, 9_000, 12_000, 15_000, 18_000]);
  });

  it("never overlaps reports: the newest result waits for the one in flight, older ones are dropped", async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const gates: (() => void)[] = [];
    const sent: ProbeResult[] = [];
    const { clock, fake, checker } = setup({
      report: (r) => {
        sent.push(r);
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        return new Promise<void>((resolve) =>
          gates.push(() => {
            inFlight--;
            resolve();
          }),
        );
      },
    });
    fake.script = [PASS, CRIT, WARN, { status: "passing", output: "back" }];
    checker.start();
    await flush();
    await step(clock, 3 * INTERVAL, INTERVAL);
    expect(sent).toEqual([PASS]); // the others wait
    gates.shift()!();
    await flush();
    expect(sent).toEqual([PASS, { status: "passing", output: "back" }]);
    gates.shift()!();
    await flush();
    expect(sent).toHaveLength(2);
    expect(maxInFlight).toBe(1);
  });

  it("retries a failed report at the next probe, then goes quiet again", async () => {
    let failuresLeft = 2;
    const sent: { at: number; r: ProbeResult }[] = [];
    const { clock, checker, t0 } = setup({
      report: async (r) => {
        sent.push({ at: clock.now() - t0, r });
        if (failuresLeft-- > 0) throw new Error("control plane unreachable");
      },
    });
    checker.start();
    await flush();
    await step(clock, 4 * INTERVAL, INTERVAL);
    expect(sent.map((s) => s.at)).toEqual([0, INTERVAL, 2 * INTERVAL]);
    expect(sent.every((s) => s.r.status === "passing")).toBe(true);
  });

  it("survives a report that throws synchronously", async () => {
    let calls = 0;
    const { clock, checker } = setup({
      report: () => {
        calls++;
        if (calls === 1) throw new Error("boom");
      },
    });
    checker.start();
    await flush();
    await step(clock, INTERVAL, INTERVAL);
    expect(calls).toBe(2);
    await step(clock, INTERVAL, INTERVAL);
    expect(calls).toBe(2);
  });

  it("counts a rejected probe as critical and keeps probing", async () => {
    const { clock, fake, reports, checker } = setup();
    fake.manual = true;
    checker.start();
    await flush();
    fake.calls[0]!.fail(new Error("kaput"));
    await flush();
    expect(reports).toEqual([{ at: 0, r: { status: "critical", output: "health probe failed: kaput" } }]);
    await step(clock, INTERVAL, INTERVAL);
    expect(fake.calls).toHaveLength(2);
  });

  it("cuts an over-long output to the control plane's limit", async () => {
    const { fake, reports, checker } = setup();
    fake.script = [{ status: "critical", output: "x".repeat(10_000) }];
    checker.start();
    await flush();
    expect(reports[0]?.r.output.length).toBe(MAX_OUTPUT_CHARS);
    expect(checker.current?.output.length).toBe(MAX_OUTPUT_CHARS);
  });
});

describe("HealthChecker dispose", () => {
  it("stops all timers and drops the result of a probe in flight, which it aborts", async () => {
    const { clock, fake, reports, checker } = setup({ reportEveryMs: 5_000 });
    fake.manual = true;
    checker.start();
    await flush();
    fake.calls[0]!.settle(PASS);
    await flush();
    await step(clock, INTERVAL); // second probe in flight; heartbeats ran
    const before = reports.length;
    expect(fake.calls).toHaveLength(2);
    const signal = fake.calls[1]!.signal;
    expect(signal?.aborted).toBe(false);
    checker.dispose();
    expect(signal?.aborted).toBe(true);
    expect(clock.pending).toBe(0);
    fake.calls[1]!.settle(CRIT);
    await flush();
    await step(clock, 5 * INTERVAL, INTERVAL);
    expect(reports).toHaveLength(before);
    expect(fake.calls).toHaveLength(2);
    expect(checker.current).toEqual(PASS);
  });

  it("lets a report in flight finish but sends nothing after it", async () => {
    let release: (() => void) | undefined;
    const sent: ProbeResult[] = [];
    const { clock, fake, checker } = setup({
      report: (r) => {
        sent.push(r);
        return new Promise<void>((resolve) => {
          release = resolve;
        });
      },
    });
    fake.script = [PASS, CRIT];
    checker.start();
    await flush();
    await step(clock, INTERVAL, INTERVAL); // CRIT queued behind PASS
    checker.dispose();
    release?.();
    await flush();
    expect(sent).toEqual([PASS]);
    expect(clock.pending).toBe(0);
  });
});

describe("HealthChecker options", () => {
  const base: HealthCheckerOptions = {
    spec: { kind: "tcp" },
    target: { host: "127.0.0.1", port: 8080 },
    intervalMs: 1_000,
    timeoutMs: 500,
    reportEveryMs: 10_000,
    report: () => {},
  };
  it.each<[string, Partial<HealthCheckerOptions>]>([
    ["a zero interval", { intervalMs: 0 }],
    ["a NaN timeout", { timeoutMs: Number.NaN }],
    ["a negative heartbeat", { reportEveryMs: -1 }],
    ["a zero threshold", { successBeforePassing: 0 }],
    ["a fractional threshold", { failuresBeforeCritical: 1.5 }],
    ["a relative http path", { spec: { kind: "http", path: "healthz" } }],
    ["port 0", { target: { host: "127.0.0.1", port: 0 } }],
    ["an unknown kind", { spec: { kind: "udp" } as unknown as HealthCheckerOptions["spec"] }],
  ])("refuses %s with WEFT_ERR_CONFIG_INVALID", (_name, over) => {
    let err: unknown;
    try {
      new HealthChecker({ ...base, ...over });
    } catch (e) {
      err = e;
    }
    expect(isWeftError(err, "WEFT_ERR_CONFIG_INVALID")).toBe(true);
  });
});

describe("HealthChecker with the real HTTP probe", () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    server = undefined;
  });

  it("reports the app going down and up again, one probe per interval", async () => {
    let code = 200;
    let hits = 0;
    server = createServer((_req, res) => {
      hits++;
      res.writeHead(code).end(`code ${code}`);
    });
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    const clock = new VirtualClock();
    const reports: ProbeResult[] = [];
    const checker = new HealthChecker({
      spec: { kind: "http", path: "/healthz" },
      target: { host: "127.0.0.1", port },
      intervalMs: INTERVAL,
      timeoutMs: 5_000,
      reportEveryMs: 60_000,
      clock,
      report: (r) => {
        reports.push(r);
      },
    });
    checkers.push(checker);
    checker.start();
    await until(() => reports.length === 1 && clock.pending === 2);
    expect(reports[0]).toEqual({
      status: "passing",
      output: `HTTP GET http://127.0.0.1:${port}/healthz: 200 OK Output: code 200`,
    });
    code = 500;
    clock.advance(INTERVAL);
    await until(() => reports.length === 2);
    expect(reports[1]?.status).toBe("critical");
    code = 429;
    await until(() => clock.pending === 2);
    clock.advance(INTERVAL);
    await until(() => reports.length === 3);
    expect(reports[2]?.status).toBe("warning");
    expect(hits).toBe(3);
  });
});

async function until(cond: () => boolean, realMs = 5_000): Promise<void> {
  const deadline = Date.now() + realMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}
