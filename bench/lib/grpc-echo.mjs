// The benches' gRPC unary method, /bench.Bench/Echo, with a raw-buffer codec
// (no protobuf work: the proxies, not the codec, are measured), and a grpc-js
// server answering it with 32 bytes. Shared by apps.mjs (the data-plane
// bench's app) and grpc-bench-app.mjs (the proxyless bench's).
import * as grpc from "@grpc/grpc-js";

export const ECHO_PATH = "/bench.Bench/Echo";
const SMALL = Buffer.alloc(32, "w");
const id = (b) => b;

/** A grpc-js server (up to 1,000 concurrent streams) whose Echo answers every call with 32 bytes. */
export function echoServer() {
  const server = new grpc.Server({ "grpc.max_concurrent_streams": 1000 });
  server.addService(
    {
      Echo: {
        path: ECHO_PATH,
        requestStream: false,
        responseStream: false,
        requestSerialize: id,
        requestDeserialize: id,
        responseSerialize: id,
        responseDeserialize: id,
      },
    },
    { Echo: (_call, cb) => cb(null, SMALL) },
  );
  return server;
}
