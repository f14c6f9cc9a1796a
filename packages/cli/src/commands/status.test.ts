/**
 * `weft status` in-process against a real control plane (memory store):
 * it shows whether the replica answering is the leader, and with several
 * addresses (--addr a,b) it answers from the first live one.
 */
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { type RunningServer, startServer } from "@weft/controlplane";
import { pino } from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import { runCaptured } from "../run-captured.suite.js";

let srv: RunningServer;
let dead: string;

beforeAll(async () => {
  srv = await startServer({
    listen: "127.0.0.1:0",
    storeSpec: "memory",
    dev: true,
    logger: pino({ level: "silent" }),
  });
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  dead = `127.0.0.1:${(s.address() as { port: number }).port}`;
  await new Promise((r) => s.close(r));
});
afterAll(async () => {
  await srv?.close();
});

it("shows the leader field (an embedded store: always the leader) and the store", async () => {
  const r = await runCaptured(["status", "--addr", srv.url], tmpdir());
  expect(r.code).toBe(0);
  expect(r.out).toMatch(/^leader\s+yes$/m);
  expect(r.out).toMatch(/^backend\s+memory$/m);
  const j = await runCaptured(["status", "--addr", srv.url, "--json"], tmpdir());
  expect(JSON.parse(j.out)).toMatchObject({ leader: true, store: "memory", backend: "memory" });
});

it("fails over: a dead first address, the live second one answers", async () => {
  const r = await runCaptured(["status", "--addr", `${dead},${srv.url}`, "--json"], tmpdir());
  expect(r.err).toBe("");
  expect(JSON.parse(r.out)).toMatchObject({ addr: srv.url, leader: true });
  const none = await runCaptured(["status", "--addr", dead], tmpdir());
  expect(none.code).not.toBe(0);
  expect(none.err).toContain(dead);
});
