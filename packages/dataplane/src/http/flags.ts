/**
 * Response flags, Envoy's vocabulary, so that operators read Weft's access
 * logs and metrics the way they read Envoy's. Local replies carry them in
 * `x-weft-response-flags`; the onRequest hooks report them ("-" when none).
 */
export const FLAGS_HEADER = "x-weft-response-flags";

export const Flag = {
  /** No route / no config for this listener yet. */
  NoRoute: "NR",
  /** No healthy upstream endpoint to pick. */
  NoHealthyUpstream: "UH",
  /** Connecting to the upstream failed (refused, timeout, identity refused). */
  UpstreamConnectionFailure: "UF",
  /** The upstream request timeout expired. */
  UpstreamRequestTimeout: "UT",
  /** The upstream reset the stream. */
  UpstreamRemoteReset: "UR",
  /** The upstream connection closed mid-request. */
  UpstreamConnectionTermination: "UC",
  /** The upstream answered something that cannot be relayed. */
  UpstreamProtocolError: "UPE",
  /** The downstream went away before the response was complete. */
  DownstreamConnectionTermination: "DC",
  /** The downstream sent a malformed or ambiguous request. */
  DownstreamProtocolError: "DPE",
  /** Every allowed retry was used and the last try still failed. */
  UpstreamRetryLimitExceeded: "URX",
  /** A circuit breaker limit of the upstream cluster was reached (fast 503, nothing sent). */
  UpstreamOverflow: "UO",
  /** A local rate limit refused the request (429) or the connection. */
  RateLimited: "RL",
  /** A route's fault injection aborted the request. */
  FaultInjected: "FI",
  /** A route's fault injection delayed the request. */
  DelayInjected: "DI",
} as const;

export type FlagCode = (typeof Flag)[keyof typeof Flag];

export const NO_FLAGS = "-";

/** Accumulates flags for one exchange; renders as Envoy does ("UF,URX" style, "-" when empty). */
export class FlagSet {
  #flags: string[] = [];

  add(flag: string): this {
    if (flag !== "" && flag !== NO_FLAGS && !this.#flags.includes(flag)) this.#flags.push(flag);
    return this;
  }

  addAll(other: FlagSet): this {
    for (const f of other.#flags) this.add(f);
    return this;
  }

  has(flag: string): boolean {
    return this.#flags.includes(flag);
  }

  toString(): string {
    return this.#flags.length === 0 ? NO_FLAGS : this.#flags.join(",");
  }
}
