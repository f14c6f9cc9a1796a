// One request of each traffic kind, retried until it succeeds: how the bench
// knows a path (direct, Weft pair, HAProxy pair) is ready before measuring.
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";

const GRPC_FRAME = Buffer.concat([Buffer.from([0, 0, 0, 0, 32]), Buffer.alloc(32, "g")]);

function http1Once(port, path) {
  return new Promise((ok) => {
    const req = http.get({ host: "127.0.0.1", port, path, agent: false, timeout: 2000 }, (res) => {
      res.resume();
      res.on("end", () => ok(res.statusCode === 200));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => ok(false));
  });
}

function h2Once(port, path, grpc) {
  return new Promise((ok) => {
    const sess = http2.connect(`http://127.0.0.1:${port}`);
    const done = (v) => {
      sess.destroy();
      ok(v);
    };
    const t = setTimeout(() => done(false), 2000);
    sess.on("error", () => {
      clearTimeout(t);
      done(false);
    });
    const headers = grpc
      ? { ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" }
      : { ":path": path };
    const st = sess.request(headers, { endStream: !grpc });
    let status = 0;
    let grpcStatus = grpc ? "" : "0";
    st.on("response", (h) => {
      status = h[":status"];
      if (h["grpc-status"] !== undefined) grpcStatus = String(h["grpc-status"]);
    });
    st.on("trailers", (h) => {
      if (h["grpc-status"] !== undefined) grpcStatus = String(h["grpc-status"]);
    });
    st.on("error", () => {});
    st.resume();
    st.on("close", () => {
      clearTimeout(t);
      done(status === 200 && grpcStatus === "0");
    });
    if (grpc) st.end(GRPC_FRAME);
  });
}

/** Raw TCP: sends `send`, succeeds when the reply starts with `expect`. */
function tcpOnce(port, send, expect) {
  return new Promise((ok) => {
    let got = "";
    const s = net.connect({ host: "127.0.0.1", port }, () => s.write(send));
    const done = (v) => {
      clearTimeout(t);
      s.destroy();
      ok(v);
    };
    const t = setTimeout(() => done(false), 2000);
    s.setEncoding("latin1");
    s.on("data", (d) => {
      got += d;
      if (got.length >= expect.length) done(got.startsWith(expect));
    });
    s.on("error", () => done(false));
    s.on("close", () => done(got.startsWith(expect)));
  });
}

/** kind: http1 | h2 | grpc | tcp | l4http. */
export function probeOnce(kind, port, path = "/") {
  if (kind === "http1") return http1Once(port, path);
  if (kind === "h2") return h2Once(port, path, false);
  if (kind === "grpc") return h2Once(port, path, true);
  if (kind === "tcp") return tcpOnce(port, "ping-weft-bench", "ping-weft-bench");
  if (kind === "l4http") return tcpOnce(port, `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`, "HTTP/1.1 200");
  throw new Error(`unknown probe kind ${kind}`);
}

export async function probeUntilOk(kind, port, path = "/", timeoutMs = 30_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await probeOnce(kind, port, path)) return;
    if (Date.now() > end)
      throw new Error(`${kind} on 127.0.0.1:${port}${path}: no success within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
