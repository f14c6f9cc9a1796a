/**
 * Durability end to end: `weft server` on a data dir takes config writes
 * from several concurrent writers; the test records every write the API
 * acknowledged (200/201), kills the server with SIGKILL in the middle of the
 * loop (writes in flight), restarts it on the same data dir and checks that
 * every acknowledged write is there. Unacknowledged writes may or may not
 * have landed; either is fine.
 */
import { afterAll, describe, expect, it } from "vitest";
import { http } from "./helpers/http.js";
import { cleanup, startWeftServer, tempDir } from "./helpers/weft.js";

afterAll(cleanup);

const WRITERS = 4;
/** Kill once this many writes are acknowledged; the loop is bounded well above it. */
const KILL_AFTER_ACKS = 120;
const MAX_WRITES = 2_000;

describe("crash safety (kill -9 during a write loop)", () => {
  it("every acknowledged write survives a restart", async () => {
    const dataDir = `${tempDir()}/data`;
    const first = await startWeftServer({ dataDir });
    const token = first.token!;

    const acked = new Map<string, number>(); // name -> the value acknowledged last
    let sent = 0;
    let failedAfterKill = 0;
    let killed = false;
    let killing: Promise<void> | undefined;
    let acks = 0;

    const writer = async (w: number) => {
      for (let i = 0; !killed && sent < MAX_WRITES; i++) {
        sent++;
        const name = `crash-${w}-${i % 40}`; // creates, then updates of the same names
        const value = sent;
        try {
          const r = await http(first.url, "/v1/config/apply", {
            token,
            timeoutMs: 5_000,
            body: {
              resources: [
                {
                  kind: "ServiceDefaults",
                  name,
                  protocol: "http",
                  maxRequestBodyBytes: value,
                },
              ],
            },
          });
          if (r.status === 200 || r.status === 201) {
            acked.set(name, value);
            acks++;
            if (acks >= KILL_AFTER_ACKS && !killing) {
              // Kill while the other writers have requests in flight.
              killing = first.kill9().then(() => {
                killed = true;
              });
            }
          } else if (!killed && !killing) {
            throw new Error(`write ${name} answered ${r.status}: ${r.text}`);
          }
        } catch (e) {
          if (!killing) throw e;
          failedAfterKill++;
          return;
        }
      }
    };
    await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));
    await killing;
    expect(killing, "the loop ended before the kill").toBeDefined();

    const second = await startWeftServer({ dataDir, expectToken: false });
    expect(second.token, "a restart must not bootstrap again").toBeUndefined();
    const list = await http(second.url, "/v1/config/servicedefaults", { token });
    expect(list.status, list.text).toBe(200);
    const stored = new Map<string, number>(
      (list.body as { name: string; maxRequestBodyBytes: number }[]).map((r) => [
        r.name,
        r.maxRequestBodyBytes,
      ]),
    );

    let lost = 0;
    for (const [name, value] of acked) {
      const got = stored.get(name);
      // The stored value may be newer (an unacknowledged later write that landed), never older.
      if (got === undefined || got < value) lost++;
    }
    console.log(`kill -9 during ${sent} writes: ${lost} acknowledged writes lost`);
    console.log(
      `  (${acks} acknowledged, ${failedAfterKill} cut off in flight by the kill, ${acked.size} names checked)`,
    );
    expect(lost).toBe(0);
    expect(acks).toBeGreaterThanOrEqual(KILL_AFTER_ACKS);
    await second.stop();
  });
});
