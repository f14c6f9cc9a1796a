import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeHealthCheckResponse,
  encodeHealthCheckRequest,
  grpcFrame,
  MAX_GRPC_MESSAGE_BYTES,
  readGrpcFrame,
  servingStatusName,
} from "./grpc-health-codec.js";

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ""), "hex");

describe("encodeHealthCheckRequest", () => {
  it("encodes the service as field 1 (length-delimited), as protoc does", () => {
    expect(encodeHealthCheckRequest("foo").toString("hex")).toBe("0a03666f6f");
  });

  it("leaves out the empty service (proto3 default)", () => {
    expect(encodeHealthCheckRequest("").length).toBe(0);
  });

  it("uses a multi-byte varint length for long names and UTF-8 bytes", () => {
    const name = "é".repeat(100); // 200 bytes
    const b = encodeHealthCheckRequest(name);
    expect(b.subarray(0, 3).toString("hex")).toBe("0ac801");
    expect(b.subarray(3).toString("utf8")).toBe(name);
  });
});

describe("grpcFrame / readGrpcFrame", () => {
  it("frames with flag 0 and a big-endian length, and reads it back", () => {
    const f = grpcFrame(hex("0801"));
    expect(f.toString("hex")).toBe("00000000020801");
    const r = readGrpcFrame(f);
    expect(r).toMatchObject({ kind: "frame", compressed: false, extra: 0 });
    if (r.kind === "frame") expect(r.message.toString("hex")).toBe("0801");
  });

  it("waits for the whole prefix and the whole message", () => {
    expect(readGrpcFrame(hex("0000")).kind).toBe("incomplete");
    expect(readGrpcFrame(hex("000000000308")).kind).toBe("incomplete");
  });

  it("refuses an oversized length from the prefix alone", () => {
    const r = readGrpcFrame(hex("00 00010001"));
    expect(r.kind).toBe("error");
    expect(MAX_GRPC_MESSAGE_BYTES).toBe(0x10000);
    expect(readGrpcFrame(hex("00 ffffffff")).kind).toBe("error");
  });

  it("refuses a compressed flag other than 0 or 1, reports 1 and extra bytes", () => {
    expect(readGrpcFrame(hex("02 00000000")).kind).toBe("error");
    expect(readGrpcFrame(hex("01 00000000"))).toMatchObject({ kind: "frame", compressed: true });
    expect(readGrpcFrame(hex("00 00000000 00"))).toMatchObject({ kind: "frame", extra: 1 });
  });
});

describe("decodeHealthCheckResponse", () => {
  const ok = (status: number) => ({ ok: true, status });
  it.each([
    ["empty message is UNKNOWN", "", ok(0)],
    ["SERVING", "0801", ok(1)],
    ["NOT_SERVING", "0802", ok(2)],
    ["SERVICE_UNKNOWN", "0803", ok(3)],
    ["an undefined enum value", "0807", ok(7)],
    ["the last occurrence wins", "0801 0802", ok(2)],
    ["a non-minimal varint", "08 81 80 80 00", ok(1)],
    ["a negative enum (10-byte varint) is truncated to int32", "08 ffffffffffffffffff01", ok(-1)],
    ["an unknown varint field is skipped", "10 96 01 0801", ok(1)],
    ["an unknown fixed64 field is skipped", "19 0102030405060708 0801", ok(1)],
    ["an unknown fixed32 field is skipped", "1d 01020304 0801", ok(1)],
    ["an unknown length-delimited field is skipped", "22 03 080808 0801", ok(1)],
    ["an unknown group (with nested fields) is skipped", "2b 0802 33 0801 34 2c 0801", ok(1)],
    ["a high field number is skipped", "f8ffffff0f 01 0801", ok(1)],
  ])("%s", (_name, input, expected) => {
    expect(decodeHealthCheckResponse(hex(input))).toEqual(expected);
  });

  it.each([
    ["a truncated varint", "08 80"],
    ["a varint longer than 10 bytes", "08 ffffffffffffffffffff01"],
    ["a 10th varint byte above 1", "08 ffffffffffffffffff02"],
    ["field 1 with the wrong wire type", "0a 01 01"],
    ["a truncated length-delimited field", "22 05 0808"],
    ["a huge length", "22 ffffffff0f"],
    ["a truncated fixed64", "19 010203"],
    ["a truncated fixed32", "1d 01"],
    ["field number 0", "00 01"],
    ["wire type 6", "0e"],
    ["wire type 7", "0f"],
    ["an unmatched end group", "2c"],
    ["a group closed by another field", "2b 34"],
    ["an unterminated group", "2b 0801"],
    ["a truncated tag", "f8"],
  ])("refuses %s", (_name, input) => {
    const r = decodeHealthCheckResponse(hex(input));
    expect(r.ok).toBe(false);
  });

  it("refuses groups nested too deeply without recursing without bound", () => {
    const depth = 10_000;
    const open = Buffer.alloc(depth, 0x2b);
    const close = Buffer.alloc(depth, 0x2c);
    expect(decodeHealthCheckResponse(Buffer.concat([open, close])).ok).toBe(false);
    // Shallow nesting is fine.
    expect(decodeHealthCheckResponse(hex("2b 2b 2c 2c 0801"))).toEqual(ok(1));
  });

  it("never throws on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const r = decodeHealthCheckResponse(bytes);
        expect(typeof r.ok).toBe("boolean");
        const f = readGrpcFrame(bytes);
        expect(["incomplete", "frame", "error"]).toContain(f.kind);
      }),
      { numRuns: 2_000 },
    );
  });

  it("names serving statuses", () => {
    expect(servingStatusName(1)).toBe("SERVING");
    expect(servingStatusName(3)).toBe("SERVICE_UNKNOWN");
    expect(servingStatusName(9)).toBe("status 9");
  });
});
