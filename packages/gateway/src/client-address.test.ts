import { describe, expect, it } from "vitest";
import { clientAddress, normalizeIp } from "./client-address.js";

describe("clientAddress", () => {
  it.each([
    // [peer, client XFF, trusted hops, client, forwarded XFF]
    ["::ffff:10.0.0.9", undefined, 0, "10.0.0.9", "10.0.0.9"],
    ["10.0.0.9", "6.6.6.6", 0, "10.0.0.9", "10.0.0.9"],
    ["10.0.0.9", "6.6.6.6, 1.2.3.4", 1, "1.2.3.4", "1.2.3.4, 10.0.0.9"],
    ["10.0.0.9", "6.6.6.6, 1.2.3.4, 10.0.0.5", 2, "1.2.3.4", "1.2.3.4, 10.0.0.5, 10.0.0.9"],
    // Fewer entries than trusted hops: the leftmost is what the trusted chain says.
    ["10.0.0.9", "1.2.3.4", 3, "1.2.3.4", "1.2.3.4, 10.0.0.9"],
    // A trusted hop that wrote garbage: the peer is the client.
    ["10.0.0.9", "not-an-ip", 1, "10.0.0.9", "not-an-ip, 10.0.0.9"],
    // Repeated fields are one list.
    ["10.0.0.9", ["6.6.6.6", "1.2.3.4"], 1, "1.2.3.4", "1.2.3.4, 10.0.0.9"],
    ["10.0.0.9", " , ,", 1, "10.0.0.9", "10.0.0.9"],
  ] as const)("peer %s, XFF %j, %i hops → %s", (peer, xff, hops, client, forwarded) => {
    const r = clientAddress(peer, xff as string | string[] | undefined, hops);
    expect(r).toEqual({ client, forwardedFor: forwarded });
  });

  it("bounds the list a client can make the gateway read", () => {
    const long = Array.from({ length: 10_000 }, () => "6.6.6.6").join(",");
    expect(clientAddress("10.0.0.9", `${long}, 1.2.3.4`, 1).client).toBe("1.2.3.4");
  });

  it("normalizes IPv4-mapped IPv6 only", () => {
    expect(normalizeIp("::ffff:1.2.3.4")).toBe("1.2.3.4");
    expect(normalizeIp("::1")).toBe("::1");
    expect(normalizeIp("::ffff:zz")).toBe("::ffff:zz");
  });
});
