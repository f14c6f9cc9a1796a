import { describe, expect, it } from "vitest";
import { children, DerError, decodeOid, encodeOid, readTlv, tlv } from "./der.js";

describe("readTlv", () => {
  it("reads short and long lengths", () => {
    const short = readTlv(Buffer.from([0x04, 0x02, 1, 2]), 0);
    expect([short.tag, [...short.value], short.end]).toEqual([0x04, [1, 2], 4]);
    const body = Buffer.alloc(200, 7);
    const long = readTlv(tlv(0x04, body), 0);
    expect(long.value.equals(body)).toBe(true);
  });

  it("refuses indefinite, oversized, overrunning and non-minimal lengths", () => {
    expect(() => readTlv(Buffer.from([0x30, 0x80, 0, 0]), 0)).toThrow(/indefinite/);
    expect(() => readTlv(Buffer.from([0x30, 0x85, 1, 1, 1, 1, 1]), 0)).toThrow(/too large/);
    expect(() => readTlv(Buffer.from([0x30, 0x05, 1]), 0)).toThrow(/past its parent/);
    expect(() => readTlv(Buffer.from([0x30, 0x81, 0x05, 1, 2, 3, 4, 5]), 0)).toThrow(/below 128/);
    expect(() => readTlv(Buffer.from([0x30, 0x82, 0x00, 0x85, ...Buffer.alloc(0x85)]), 0)).toThrow(
      /leading zero/,
    );
    expect(() => readTlv(Buffer.from([0x1f, 0x01, 0x00]), 0)).toThrow(DerError);
  });

  it("children fill their parent exactly", () => {
    const seq = tlv(0x30, tlv(0x02, Buffer.from([1])), tlv(0x05));
    expect(children(readTlv(seq, 0).value).map((t) => t.tag)).toEqual([0x02, 0x05]);
    expect(() => children(Buffer.from([0x02, 0x05, 1]))).toThrow(DerError);
  });
});

describe("OIDs", () => {
  it.each(["2.5.29.17", "1.2.840.113549.1.9.14", "1.3.6.1.5.5.7.3.2", "2.999.1", "1.2.840.10045.4.3.2"])(
    "round-trips %s",
    (oid) => {
      const t = readTlv(encodeOid(oid), 0);
      expect(decodeOid(t.value)).toBe(oid);
    },
  );
  it("refuses truncated and non-minimal arcs", () => {
    expect(() => decodeOid(Buffer.from([0x2a, 0x86]))).toThrow(/truncated/);
    expect(() => decodeOid(Buffer.from([0x2a, 0x80, 0x01]))).toThrow(/leading zero/);
  });
});
