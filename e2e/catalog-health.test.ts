/**
 * Catalog and health end to end, against `weft server` as a real process on
 * a durable data dir: a service token made through the API registers two
 * `api` instances with 1 s TTL checks and heartbeats them; a blocking watch
 * on /v1/health/service/api sees one instance go critical and leave
 * discovery once its heartbeat stops, within 100 ms of the change (client
 * receive time vs the check's `updatedAt`, written by the server when it
 * turned the check critical; both from this machine's clock); then the
 * instance is deregistered after its grace period.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createToken, http } from "./helpers/http.js";
import { cleanup, startWeftServer, type WeftServer } from "./helpers/weft.js";

let server: WeftServer;
let serviceToken: string;
const timers: NodeJS.Timeout[] = [];

beforeAll(async () => {
  server = await startWeftServer();
  expect(server.token).toBeTruthy();
  serviceToken = (await createToken(server.url, server.token!, ["service:api:write"], "api sidecars"))
    .secretId;
});

afterAll(async () => {
  for (const t of timers) clearInterval(t);
  await cleanup();
});

function register(id: string) {
  return http(server.url, "/v1/catalog/instances", {
    method: "PUT",
    token: serviceToken,
    body: {
      id,
      service: "api",
      address: "127.0.0.1",
      port: id === "api-1" ? 9001 : 9002,
      tags: ["v1"],
      checks: [{ id: "ttl", ttl: "1s", deregisterCriticalAfter: "2s" }],
    },
  });
}

function heartbeat(id: string) {
  return http(server.url, `/v1/catalog/instances/${id}/checks/ttl`, {
    method: "PUT",
    token: serviceToken,
    body: { status: "passing", output: "ok" },
  });
}

/** Heartbeats every 200 ms (TTL 1 s) until stopped. */
function keepAlive(id: string): () => void {
  const t = setInterval(() => {
    heartbeat(id).catch(() => {});
  }, 200);
  timers.push(t);
  return () => clearInterval(t);
}

describe("catalog and health (real process, TTL checks, blocking watch)", () => {
  it("a stopped heartbeat turns critical, leaves discovery within 100 ms, then is deregistered", async () => {
    for (const id of ["api-1", "api-2"]) {
      const r = await register(id);
      expect(r.status, r.text).toBe(201);
      expect((await heartbeat(id)).status).toBe(200);
    }
    keepAlive("api-1");
    const stopApi2 = keepAlive("api-2");

    // Both instances are in discovery (passing only, the default).
    const first = await http(server.url, "/v1/health/service/api", { token: serviceToken });
    expect(first.status, first.text).toBe(200);
    expect(first.headers["x-weft-index"]).toBe(String(first.body.index));
    expect(first.body.instances.map((i: { id: string }) => i.id).sort()).toEqual(["api-1", "api-2"]);

    // Watch: loop on the blocking query until api-2 has left discovery.
    let index: number = first.body.index;
    stopApi2();
    const stoppedAt = Date.now();
    let leftAt = 0;
    let rounds = 0;
    while (Date.now() - stoppedAt < 10_000) {
      const r = await http(server.url, `/v1/health/service/api?index=${index}&wait=5s`, {
        token: serviceToken,
      });
      rounds++;
      expect(r.status, r.text).toBe(200);
      const ids = r.body.instances.map((i: { id: string }) => i.id);
      if (!ids.includes("api-2")) {
        leftAt = r.receivedAt;
        expect(ids).toEqual(["api-1"]);
        break;
      }
      index = r.body.index;
    }
    expect(leftAt, "api-2 never left discovery").toBeGreaterThan(0);

    // Server-side times of the transition (same machine clock as ours):
    // updatedAt is when the server wrote the check critical (the change the
    // watch reacts to); criticalSince is when the TTL ran out, which the
    // server's deadline sweep (20 ms granularity) notices up to a tick later.
    const inst = await http(server.url, "/v1/catalog/instances/api-2", { token: serviceToken });
    expect(inst.status, inst.text).toBe(200);
    expect(inst.body.status).toBe("critical");
    const check = inst.body.checks.find((c: { id: string }) => c.id === "ttl");
    const changedAt: number = check.updatedAt;
    const expiredAt: number = check.criticalSince ?? check.updatedAt;
    const latency = leftAt - changedAt;
    console.log(
      `watch latency: ${latency} ms from api-2's change to critical (server write) to the watch answer; ` +
        `${leftAt - expiredAt} ms from its TTL running out (includes the server's 20 ms deadline sweep); ` +
        `${rounds} long-poll round(s)`,
    );
    expect(latency).toBeGreaterThanOrEqual(0);
    expect(latency).toBeLessThan(100);
    expect(leftAt - expiredAt).toBeLessThan(150);
    // It went critical about one TTL after its last heartbeat, not at once and not much later.
    expect(expiredAt - stoppedAt).toBeGreaterThan(500);
    expect(expiredAt - stoppedAt).toBeLessThan(2_500);
    const transitionAt = expiredAt;

    // With ?status=any it is still listed, as critical, until the grace period ends.
    const any = await http(server.url, "/v1/health/service/api?status=any", { token: serviceToken });
    const api2 = any.body.instances.find((i: { id: string }) => i.id === "api-2");
    expect(api2?.status).toBe("critical");

    // Deregistered after deregisterCriticalAfter (2 s): watch the full list until it is gone.
    let anyIndex: number = any.body.index;
    let goneAt = 0;
    const watchStart = Date.now();
    while (Date.now() - watchStart < 10_000) {
      const r = await http(server.url, `/v1/health/service/api?status=any&index=${anyIndex}&wait=5s`, {
        token: serviceToken,
      });
      expect(r.status, r.text).toBe(200);
      if (!r.body.instances.some((i: { id: string }) => i.id === "api-2")) {
        goneAt = r.receivedAt;
        break;
      }
      anyIndex = r.body.index;
    }
    expect(goneAt, "api-2 was never deregistered").toBeGreaterThan(0);
    const sinceCritical = goneAt - transitionAt;
    console.log(`api-2 deregistered ${sinceCritical} ms after going critical (deregisterCriticalAfter 2s)`);
    expect(sinceCritical).toBeGreaterThanOrEqual(1_900);
    expect(sinceCritical).toBeLessThan(4_000);
    expect((await http(server.url, "/v1/catalog/instances/api-2", { token: serviceToken })).status).toBe(404);

    // api-1, still heartbeating, is untouched.
    const still = await http(server.url, "/v1/health/service/api", { token: serviceToken });
    expect(still.body.instances.map((i: { id: string }) => i.id)).toEqual(["api-1"]);
    expect(still.body.instances[0].status).toBe("passing");
  });
});
