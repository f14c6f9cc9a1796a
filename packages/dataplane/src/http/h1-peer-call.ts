import { ClientCall, type ClientCallOptions, requestHead } from "./h1-fast/client.js";
import type { Http1PeerPool, PeerConnection } from "./h1-peer-pool.js";
import { REFUSED_HEADER, type RequestHead } from "./headers.js";
import type { UpstreamEvents, UpstreamFailure } from "./types.js";

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

function peerRefusal(status: number, raw: readonly string[]): UpstreamFailure | undefined {
  if (status !== 503) return undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if ((raw[i] as string).toLowerCase() === REFUSED_HEADER) return "refused";
  }
  return undefined;
}

/** What every call through a pool is told: one object per pool, not one per request. */
const optionsByPool = new WeakMap<Http1PeerPool, ClientCallOptions>();

function optionsFor(pool: Http1PeerPool): ClientCallOptions {
  let o = optionsByPool.get(pool);
  if (o === undefined) {
    o = {
      stripInternalResponse: false,
      refused: peerRefusal,
      // Whatever the outcome, the connection goes back: the pool keeps it only if it is still usable.
      release: (c) => pool.release(c as PeerConnection),
      staleIsRefused: true,
    };
    optionsByPool.set(pool, o);
  }
  return o;
}

export class PeerH1Call extends ClientCall {
  constructor(
    pool: Http1PeerPool,
    conn: PeerConnection,
    head: RequestHead,
    service: string,
    endStream: boolean,
    events: UpstreamEvents,
  ) {
    super(
      conn,
      head.method,
      requestHead(head, head.authority ?? service),
      endStream,
      events,
      optionsFor(pool),
    );
  }
}
