/**
 * Who the client is, and the `x-forwarded-for` the gateway passes on.
 *
 * The gateway trusts `trustedHops` proxies in front of it (Envoy's
 * xff_num_trusted_hops). Each proxy appends the address of its own peer, so
 * with the peer of the gateway appended last, the list reads
 * [untrusted…, client, hop1, …, hopN-1, peer]; the client is the entry
 * `trustedHops` places left of the end. Everything further left was written
 * by the client itself and is dropped, so a client-sent XFF never becomes
 * the client address nor reaches the upstream as if the gateway vouched
 * for it. With 0 trusted hops (the default) the peer address is the client
 * and the client's XFF is dropped entirely.
 */
import { isIP } from "node:net";

export interface ClientAddress {
  /** The client's address, used for per-client rate limits and logs. */
  client: string;
  /** The x-forwarded-for to send upstream. */
  forwardedFor: string;
}

/** XFF entries considered at most (a longer list is a client writing noise). */
const MAX_ENTRIES = 32;

/** `::ffff:10.0.0.1` → `10.0.0.1`: one spelling per IPv4 client, so one rate-limit bucket. */
export function normalizeIp(addr: string): string {
  return addr.startsWith("::ffff:") && isIP(addr.slice(7)) === 4 ? addr.slice(7) : addr;
}

export function clientAddress(
  peer: string | undefined,
  xff: string | string[] | undefined,
  trustedHops: number,
): ClientAddress {
  const remote = normalizeIp(peer ?? "unknown");
  if (trustedHops <= 0 || xff === undefined) return { client: remote, forwardedFor: remote };
  const joined = Array.isArray(xff) ? xff.join(",") : xff;
  const entries = joined
    .split(",")
    .slice(-MAX_ENTRIES)
    .map((s) => s.trim())
    .filter((s) => s !== "");
  const list = [...entries, remote];
  const at = Math.max(0, list.length - 1 - trustedHops);
  const trusted = list.slice(at);
  const claimed = trusted[0] as string;
  // A trusted hop that wrote garbage gives no client address: fall back to the peer.
  const client = isIP(claimed) !== 0 ? normalizeIp(claimed) : remote;
  return { client, forwardedFor: trusted.join(", ") };
}
