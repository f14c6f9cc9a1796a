import type { Http1PeerPool, PeerConnection } from "./h1-peer-pool.js";
import { STALE_CONNECTION } from "./h1-peer-pool.js";
import { REFUSED_HEADER, type RequestHead } from "./headers.js";
import type { UpstreamEvents, UpstreamFailure } from "./types.js";
import { CONNECT_ERRORS, UndiciCall } from "./undici-call.js";

/**
 * One request to a peer proxy on a kept-alive HTTP/1.1 mTLS connection
 * (h1-peer-pool.ts). HTTP/1.1 has no REFUSED_STREAM, so the two ways
 * HTTP/2 says "not processed, try elsewhere" are spelt out:
 *
 * - the peer's own refusal (its app is not accepting connections) is a 503
 *   carrying `x-weft-refused` (REFUSED_HEADER), which only a proxy can set:
 *   apps' `x-weft-*` response fields are dropped;
 * - a request that failed on a connection the peer had already ended was
 *   not processed (the inbound side drops requests on connections it
 *   ended): `stale` — the endpoint is fine, the connection was not.
 *
 * Both are reported as "refused", which the relay turns into another try
 * when no request byte was sent, as for REFUSED_STREAM.
 */

const REFUSED_BYTES = Buffer.from(REFUSED_HEADER, "latin1");

export class PeerH1Call extends UndiciCall {
  /** The request failed only because its connection had been closed by the peer. */
  stale = false;
  readonly #pool: Http1PeerPool;
  readonly #conn: PeerConnection;

  constructor(
    pool: Http1PeerPool,
    conn: PeerConnection,
    head: RequestHead,
    service: string,
    endStream: boolean,
    events: UpstreamEvents,
  ) {
    super(head, head.authority ?? service, endStream, events, { stripInternalResponse: false });
    this.#pool = pool;
    this.#conn = conn;
    // At once: the app's HTTP/1.1 connection cannot reset a request the way an HTTP/2 stream can
    // (see UndiciAppCall's deferral), and the connection is ours alone until released.
    conn.client.dispatch(this.dispatchOptions, this);
  }

  protected override released(): void {
    this.#pool.release(this.#conn);
  }

  protected override refusedResponse(status: number, rawHeaders: Buffer[]): UpstreamFailure | undefined {
    if (status !== 503) return undefined;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i] as Buffer;
      if (name.length === REFUSED_BYTES.length && name.toString("latin1").toLowerCase() === REFUSED_HEADER)
        return "refused";
    }
    return undefined;
  }

  /**
   * Whatever the error, the connection goes back: the pool keeps it only if it is still usable
   * (a request cancelled before it was written leaves it so; an abort in flight closes it).
   */
  override onError(err: Error): void {
    super.onError(err);
    this.#pool.release(this.#conn);
  }

  protected failedEarly(err: Error, code: string): void {
    if (code === STALE_CONNECTION || this.#conn.peerEnded) {
      this.stale = true;
      this.fail("refused", `peer connection closed before the request: ${err.message}`);
      return;
    }
    this.fail(CONNECT_ERRORS.has(code) ? "connect" : "reset", err.message);
  }
}
