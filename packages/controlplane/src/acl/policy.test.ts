import { describe, expect, it } from "vitest";
import { MemoryStore } from "../store/memory.js";
import { AclService, can, DEV_ANONYMOUS } from "./acl.js";
import { PERMISSIONS, type Permission, parsePolicy, policiesAllow, servicePermission } from "./policy.js";

const P: Permission[] = [
  PERMISSIONS.catalogRead,
  PERMISSIONS.configRead,
  PERMISSIONS.configWrite,
  PERMISSIONS.aclRead,
  PERMISSIONS.aclWrite,
  servicePermission("api", "read"),
  servicePermission("api", "write"),
  servicePermission("web", "read"),
  servicePermission("web", "write"),
];

// Columns in the order of P: 1 = allowed.
const TABLE: [string, number[]][] = [
  ["operator", [1, 1, 1, 1, 1, 1, 1, 1, 1]],
  ["read", [1, 1, 0, 0, 0, 1, 0, 1, 0]],
  ["service:api:write", [1, 1, 0, 0, 0, 1, 1, 1, 0]],
  ["service:web:write", [1, 1, 0, 0, 0, 1, 0, 1, 1]],
  ["service:api:read", [0, 0, 0, 0, 0, 1, 0, 0, 0]],
];

describe("policies", () => {
  for (const [policy, row] of TABLE) {
    it(`${policy}`, () => {
      expect(parsePolicy(policy).ok).toBe(true);
      expect(P.map((p) => (policiesAllow([policy], p) ? 1 : 0))).toEqual(row);
    });
  }

  it("no policy allows nothing; policies add up", () => {
    expect(P.some((p) => policiesAllow([], p))).toBe(false);
    expect(policiesAllow(["service:api:read", "service:web:write"], servicePermission("web", "write"))).toBe(
      true,
    );
  });

  it.each([
    "admin",
    "service:api",
    "service:API:write",
    "service:api:delete",
    "service::write",
    "service:a:b:write",
    "operator ",
    "",
  ])("refuses the policy %j", (text) => {
    expect(parsePolicy(text).ok).toBe(false);
  });

  it("the dev anonymous identity is operator", () => {
    expect(can(DEV_ANONYMOUS, PERMISSIONS.aclWrite)).toBe(true);
  });
});

describe("AclService", () => {
  it("stores only the hash, resolves secrets, bootstraps once, revokes", async () => {
    const store = new MemoryStore();
    const acl = await AclService.open(store);
    const secret = await acl.bootstrap();
    expect(secret).toBeDefined();
    expect(await acl.bootstrap()).toBeUndefined();
    const dump = JSON.stringify((await store.range("")).kvs);
    expect(dump).not.toContain(secret as string);
    const id = acl.resolve(secret as string);
    expect(id?.policies).toEqual(["operator"]);
    expect(acl.resolve("wrong")).toBeUndefined();
    const t = await acl.create({ policies: ["service:api:write"] });
    expect(acl.resolve(t.secretId)?.policies).toEqual(["service:api:write"]);
    // Revoking every token does not re-open bootstrap.
    for (const info of acl.list()) await acl.revoke(info.accessorId);
    expect(acl.list()).toEqual([]);
    expect(acl.resolve(secret as string)).toBeUndefined();
    expect(await acl.bootstrap()).toBeUndefined();
    await expect(acl.create({ policies: ["root"] })).rejects.toMatchObject({ code: "WEFT_ERR_VALIDATION" });
    await expect(acl.create({ policies: [] })).rejects.toMatchObject({ code: "WEFT_ERR_VALIDATION" });
    await acl.dispose();
    await store.close();
  });
});
