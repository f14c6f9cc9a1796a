/** The Echo gRPC service of echo.proto: a grpc-js server and a typed client for tests. */
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

export interface Msg {
  text: string;
  n: number;
}

type Callback = (err: grpc.ServiceError | null, res?: Msg) => void;

export interface EchoClient extends grpc.Client {
  Unary(req: Msg, metadata: grpc.Metadata, cb: Callback): grpc.ClientUnaryCall;
  ServerStream(req: Msg, metadata?: grpc.Metadata): grpc.ClientReadableStream<Msg>;
  ClientStream(cb: Callback): grpc.ClientWritableStream<Msg>;
  Bidi(): grpc.ClientDuplexStream<Msg, Msg>;
}

const definition = protoLoader.loadSync(fileURLToPath(new URL("./echo.proto", import.meta.url)), {
  keepCase: true,
  defaults: true,
});
const loaded = grpc.loadPackageDefinition(definition) as unknown as {
  weft: { test: { Echo: grpc.ServiceClientConstructor } };
};
const Echo = loaded.weft.test.Echo;

export function echoClient(port: number): EchoClient {
  return new Echo(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as EchoClient;
}

export interface EchoHandlers {
  Unary: grpc.handleUnaryCall<Msg, Msg>;
  ServerStream: grpc.handleServerStreamingCall<Msg, Msg>;
  ClientStream: grpc.handleClientStreamingCall<Msg, Msg>;
  Bidi: grpc.handleBidiStreamingCall<Msg, Msg>;
}

export async function startGrpcApp(handlers: EchoHandlers): Promise<{ port: number; close(): void }> {
  const server = new grpc.Server();
  server.addService(Echo.service, handlers as unknown as grpc.UntypedServiceImplementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return { port, close: () => server.forceShutdown() };
}

/** A gRPC message frame (uncompressed) of echo.proto's Msg with only `text` set, for raw HTTP/2 clients. */
export function grpcFrame(text: string): Buffer {
  const bytes = Buffer.from(text);
  if (bytes.length > 127) throw new Error("keep it short: one-byte varint length");
  const msg = Buffer.concat([Buffer.from([0x0a, bytes.length]), bytes]);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(msg.length, 1);
  return Buffer.concat([head, msg]);
}
