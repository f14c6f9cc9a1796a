import { PassThrough, Readable, Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { pump } from "./pump.js";

/** A sink that takes one chunk per tick, with a tiny buffer: writes report backpressure at once. */
function slowSink(): { sink: Writable; got: Buffer[] } {
  const got: Buffer[] = [];
  const sink = new Writable({
    highWaterMark: 4,
    write(chunk: Buffer, _enc, cb) {
      got.push(chunk);
      setImmediate(cb);
    },
  });
  return { sink, got };
}

describe("pump", () => {
  it("delivers every chunk in order through backpressure, counts them, and never ends the sink", async () => {
    const chunks = Array.from({ length: 200 }, (_, i) => Buffer.from(`chunk-${i};`));
    const src = Readable.from(chunks, { objectMode: false });
    const { sink, got } = slowSink();
    let counted = 0;
    let paused = 0;
    src.on("pause", () => paused++);
    pump(src, sink, (n) => {
      counted += n;
    });
    await new Promise((r) => src.once("end", r));
    await new Promise((r) => setTimeout(r, 50));
    expect(Buffer.concat(got).toString()).toBe(Buffer.concat(chunks).toString());
    expect(counted).toBe(Buffer.concat(chunks).length);
    expect(paused).toBeGreaterThan(0); // backpressure was honoured, not just buffered
    expect(sink.writableEnded).toBe(false);
  });

  it("stops writing when stopped, and leaves no listener behind", async () => {
    const src = new PassThrough();
    const { sink, got } = slowSink();
    const stop = pump(src, sink);
    src.write("a");
    await new Promise((r) => setImmediate(r));
    stop();
    src.write("b");
    await new Promise((r) => setTimeout(r, 10));
    expect(Buffer.concat(got).toString()).toBe("a");
    expect(src.listenerCount("data")).toBe(0);
    expect(sink.listenerCount("drain")).toBe(0);
  });
});
