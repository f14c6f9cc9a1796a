// A small load generator in Node for what wrk and h2load do not do well:
//   - open loop (fixed rate): arrivals evenly spaced at `rate` per second,
//     handed to the first idle connection of a pool (queued when all are
//     busy); latency is measured from each request's *scheduled* time, so a
//     slow response delays the clock of the requests behind it and is
//     counted (no coordinated omission). The generator's own timer lag
//     (Node timers have ~1 ms resolution) is reported next to it: it is the
//     same for every topology and cancels out of "added latency";
//   - closed loop (fixed concurrency) for raw TCP request/response.
// Kinds: http1 (raw sockets, keep-alive, minimal response parser), tcp
// (32-byte message, wait for the 32-byte echo), h2 (node:http2 sessions; a
// gRPC unary call when `grpc` is set).
// Run as a child so its CPU is its own:
//   node bench/lib/loadgen.mjs '{"kind":"http1","mode":"open","port":P,"rate":1000,...}'
// Prints one JSON line with the result.
import http2 from "node:http2";
import net from "node:net";

const cfg = JSON.parse(process.argv[2]);
const {
  kind,
  mode,
  port,
  host = "127.0.0.1",
  path = "/",
  connections = 16,
  streamsPerSession = 8,
  rate = 1000,
  durationS = 5,
  warmupS = 1,
  grpc = false,
} = cfg;

const TCP_MSG = Buffer.alloc(32, "t");
const GRPC_FRAME = Buffer.concat([Buffer.from([0, 0, 0, 0, 32]), Buffer.alloc(32, "g")]);

// ---------------------------------------------------------------- transports
// Each connection object: send(onDone) where onDone(ok) is called once per request.

function connectSocket() {
  return new Promise((ok, fail) => {
    const s = net.connect({ host, port, noDelay: true }, () => ok(s));
    s.once("error", fail);
  });
}

async function http1Conn() {
  const s = await connectSocket();
  const req = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUser-Agent: weft-bench\r\n\r\n`);
  let done = null;
  let buf = null;
  let state = 0; // 0 headers, 1 body by length, 2 chunked
  let left = 0;
  let status = 0;
  const finish = (ok) => {
    const d = done;
    done = null;
    state = 0;
    d?.(ok);
  };
  const parse = () => {
    for (;;) {
      if (buf === null || buf.length === 0) return;
      if (state === 0) {
        const i = buf.indexOf("\r\n\r\n");
        if (i < 0) return;
        const head = buf.latin1Slice(0, i);
        buf = buf.subarray(i + 4);
        status = Number(head.slice(9, 12));
        const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        if (cl) {
          left = Number(cl[1]);
          state = 1;
          if (left === 0) finish(status < 400);
        } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
          state = 2;
        } else {
          finish(false);
          s.destroy();
          return;
        }
      } else if (state === 1) {
        if (buf.length >= left) {
          buf = buf.subarray(left);
          finish(status < 400);
        } else {
          left -= buf.length;
          buf = null;
        }
      } else if (left > 0) {
        // inside a chunk: left counts its data and the CRLF after it
        if (buf.length >= left) {
          buf = buf.subarray(left);
          left = 0;
        } else {
          left -= buf.length;
          buf = null;
        }
      } else {
        const i = buf.indexOf("\r\n");
        if (i < 0) return;
        const size = Number.parseInt(buf.latin1Slice(0, i), 16);
        if (size === 0) {
          // last chunk, no trailers expected: "0\r\n\r\n"
          if (buf.length < i + 4) return;
          buf = buf.subarray(i + 4);
          finish(status < 400);
        } else {
          buf = buf.subarray(i + 2);
          left = size + 2;
        }
      }
    }
  };
  s.on("data", (c) => {
    buf = buf === null || buf.length === 0 ? c : Buffer.concat([buf, c]);
    parse();
  });
  s.on("error", () => {});
  s.on("close", () => finish(false));
  return {
    send(cb) {
      done = cb;
      s.write(req);
    },
    close: () => s.destroy(),
  };
}

async function tcpConn() {
  const s = await connectSocket();
  let done = null;
  let got = 0;
  s.on("data", (c) => {
    got += c.length;
    if (got >= TCP_MSG.length && done) {
      got -= TCP_MSG.length;
      const d = done;
      done = null;
      d(true);
    }
  });
  s.on("error", () => {});
  s.on("close", () => {
    const d = done;
    done = null;
    d?.(false);
  });
  return {
    send(cb) {
      done = cb;
      s.write(TCP_MSG);
    },
    close: () => s.destroy(),
  };
}

const sessions = [];
function h2Session() {
  return new Promise((ok, fail) => {
    const sess = http2.connect(`http://${host}:${port}`, { peerMaxConcurrentStreams: 1000 });
    sess.once("connect", () => ok(sess));
    sess.once("error", fail);
    sess.on("error", () => {});
    sessions.push(sess);
  });
}

/** One "connection" = one stream slot on a shared session. */
function h2Slot(sess) {
  const headers = grpc
    ? {
        ":method": "POST",
        ":path": path,
        "content-type": "application/grpc",
        te: "trailers",
      }
    : { ":method": "GET", ":path": path };
  return {
    send(cb) {
      let status = 0;
      let grpcStatus = grpc ? "" : "0";
      let finished = false;
      const end = (ok) => {
        if (finished) return;
        finished = true;
        cb(ok);
      };
      let st;
      try {
        st = sess.request(headers, { endStream: !grpc });
      } catch {
        end(false);
        return;
      }
      st.on("response", (h) => {
        status = h[":status"];
        if (h["grpc-status"] !== undefined) grpcStatus = String(h["grpc-status"]);
      });
      st.on("trailers", (t) => {
        if (t["grpc-status"] !== undefined) grpcStatus = String(t["grpc-status"]);
      });
      st.on("data", () => {});
      st.on("end", () => end(status === 200 && grpcStatus === "0"));
      st.on("error", () => end(false));
      st.on("close", () => end(false));
      if (grpc) st.end(GRPC_FRAME);
    },
    close() {},
  };
}

async function openPool() {
  if (kind === "h2") {
    const nSessions = Math.max(1, Math.ceil(connections / streamsPerSession));
    const ss = await Promise.all(Array.from({ length: nSessions }, h2Session));
    return Array.from({ length: connections }, (_, i) => h2Slot(ss[i % ss.length]));
  }
  const make = kind === "http1" ? http1Conn : kind === "tcp" ? tcpConn : null;
  if (!make) throw new Error(`unknown kind ${kind}`);
  return Promise.all(Array.from({ length: connections }, make));
}

// ---------------------------------------------------------------- stats

function percentiles(arr, n) {
  const a = arr.subarray(0, n).sort();
  const q = (p) => (n === 0 ? Number.NaN : a[Math.min(n - 1, Math.floor(p * n))]);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += a[i];
  return {
    p50: q(0.5),
    p90: q(0.9),
    p99: q(0.99),
    p999: q(0.999),
    max: n ? a[n - 1] : Number.NaN,
    mean: n ? sum / n : Number.NaN,
  };
}

const round3 = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v * 1000) / 1000]));

// ---------------------------------------------------------------- modes

async function openLoop(pool) {
  const interval = 1000 / rate;
  const warmN = Math.round(warmupS * rate);
  const total = warmN + Math.round(durationS * rate);
  const lat = new Float64Array(total);
  const latReleased = new Float64Array(total);
  const lag = new Float64Array(total);
  let nLat = 0;
  let nLag = 0;
  let completed = 0;
  let errors = 0;
  let outstanding = 0;
  const idle = [...pool];
  const queue = []; // [scheduled, released, index] waiting for a connection
  let measureStart = 0;
  let measureEnd = 0;

  const dispatch = (conn, scheduled, released, index) => {
    outstanding++;
    conn.send((ok) => {
      outstanding--;
      const now = performance.now();
      if (index >= warmN) {
        if (ok) {
          latReleased[nLat] = now - released;
          lat[nLat++] = now - scheduled;
          completed++;
        } else errors++;
        measureEnd = now;
      }
      const next = queue.shift();
      if (next) dispatch(conn, next[0], next[1], next[2]);
      else idle.push(conn);
    });
  };

  const t0 = performance.now() + 5;
  let i = 0;
  await new Promise((resolveAll) => {
    const tick = () => {
      const now = performance.now();
      while (i < total && t0 + i * interval <= now) {
        const at = t0 + i * interval;
        if (i === warmN) measureStart = at;
        if (i >= warmN) lag[nLag++] = now - at;
        const c = idle.pop();
        if (c) dispatch(c, at, now, i);
        else queue.push([at, now, i]);
        i++;
      }
      if (i < total) setTimeout(tick, Math.max(0, t0 + i * interval - performance.now()));
      else resolveAll();
    };
    tick();
  });
  // Drain: wait for what is in flight or queued, bounded.
  const deadline = performance.now() + 5_000;
  while ((outstanding > 0 || queue.length > 0) && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 5));
  }
  const incomplete = outstanding + queue.length;
  const seconds = Math.max(1e-9, (measureEnd - measureStart) / 1000);
  return {
    targetRate: rate,
    achievedRps: Math.round(completed / seconds),
    requests: completed,
    errors: errors + incomplete,
    latencyMs: round3(percentiles(lat, nLat)),
    // From the moment the timer released the request (its wait for a free connection included):
    // the same figure without the generator's timer lag.
    latencyFromReleaseMs: round3(percentiles(latReleased, nLat)),
    timerLagMs: round3(percentiles(lag, nLag)),
  };
}

async function closedLoop(pool) {
  const warmEnd = performance.now() + warmupS * 1000;
  const end = warmEnd + durationS * 1000;
  let cap = 1 << 16;
  let lat = new Float64Array(cap);
  let n = 0;
  let errors = 0;
  let measureEnd = warmEnd;
  await Promise.all(
    pool.map(
      (conn) =>
        new Promise((done) => {
          const one = () => {
            const t = performance.now();
            if (t >= end) {
              done();
              return;
            }
            conn.send((ok) => {
              const now = performance.now();
              if (t >= warmEnd) {
                if (ok) {
                  if (n === cap) {
                    cap *= 2;
                    const bigger = new Float64Array(cap);
                    bigger.set(lat);
                    lat = bigger;
                  }
                  lat[n++] = now - t;
                } else errors++;
                measureEnd = now;
              }
              if (ok) one();
              else done();
            });
          };
          one();
        }),
    ),
  );
  const seconds = Math.max(1e-9, (measureEnd - warmEnd) / 1000);
  return {
    achievedRps: Math.round(n / seconds),
    requests: n,
    errors,
    latencyMs: round3(percentiles(lat, n)),
  };
}

const pool = await openPool();
const r = mode === "open" ? await openLoop(pool) : await closedLoop(pool);
for (const c of pool) c.close();
for (const s of sessions) s.destroy();
process.stdout.write(`${JSON.stringify({ kind, mode, connections, durationS, ...r })}\n`);
process.exit(0);
