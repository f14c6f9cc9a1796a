/**
 * Store key layout of the control plane. One place, so that backends,
 * snapshots and tools agree:
 *
 *   /catalog/instances/<service>/<instanceId>   Instance (JSON, without modifyIndex)
 *   /config/<Kind>/<name>                       config resource as applied (canonical JSON)
 *   /acl/tokens/<accessorId>                    token record (secret only as SHA-256 hash)
 *   /acl/bootstrap                              marker: the management token was created once
 *   /ca/active                                  id of the root that signs new leaves
 *   /ca/retiring                                id of the root a rotation replaced, until it is removed
 *   /ca/roots/<rootId>                          root record (certificate, provider state with the key)
 *   /ca/leaves/<rootId>/<service>/<holder>      a leaf that root signed and that is not yet replaced
 */

export const INSTANCES_PREFIX = "/catalog/instances/";
export const CONFIG_PREFIX = "/config/";
export const ACL_PREFIX = "/acl/";
export const ACL_TOKENS_PREFIX = "/acl/tokens/";
export const ACL_BOOTSTRAP_KEY = "/acl/bootstrap";

export function instanceKey(service: string, id: string): string {
  return `${serviceInstancesPrefix(service)}${id}`;
}

/** The prefix under which every instance of `service` is stored. */
export function serviceInstancesPrefix(service: string): string {
  return `${INSTANCES_PREFIX}${service}/`;
}

/** Splits an instance key into service and id; undefined for anything else. */
export function parseInstanceKey(key: string): { service: string; id: string } | undefined {
  const parts = splitUnder(INSTANCES_PREFIX, key);
  return parts && { service: parts[0], id: parts[1] };
}

export function configKey(kind: string, name: string): string {
  return `${CONFIG_PREFIX}${kind}/${name}`;
}

export function parseConfigKey(key: string): { kind: string; name: string } | undefined {
  const parts = splitUnder(CONFIG_PREFIX, key);
  return parts && { kind: parts[0], name: parts[1] };
}

/** `<prefix><a>/<b>` -> [a, b] with both non-empty (b may hold further '/'); else undefined. */
function splitUnder(prefix: string, key: string): [string, string] | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const rest = key.slice(prefix.length);
  const slash = rest.indexOf("/");
  if (slash <= 0 || slash === rest.length - 1) return undefined;
  return [rest.slice(0, slash), rest.slice(slash + 1)];
}

export function tokenKey(accessorId: string): string {
  return `${ACL_TOKENS_PREFIX}${accessorId}`;
}

export const CA_PREFIX = "/ca/";
export const CA_ACTIVE_KEY = "/ca/active";
export const CA_RETIRING_KEY = "/ca/retiring";
export const CA_ROOTS_PREFIX = "/ca/roots/";
export const CA_LEAVES_PREFIX = "/ca/leaves/";

export function caRootKey(rootId: string): string {
  return `${CA_ROOTS_PREFIX}${rootId}`;
}

/** `holder` is the instance id the leaf was asked for, else `serial-<serial>`. */
export function caLeafKey(rootId: string, service: string, holder: string): string {
  return `${caLeavesPrefix(rootId)}${service}/${holder}`;
}

export function caLeavesPrefix(rootId: string): string {
  return `${CA_LEAVES_PREFIX}${rootId}/`;
}

export function parseCaLeafKey(key: string): { rootId: string; service: string; holder: string } | undefined {
  const outer = splitUnder(CA_LEAVES_PREFIX, key);
  const inner = outer && splitUnder("", outer[1]);
  return outer && inner && { rootId: outer[0], service: inner[0], holder: inner[1] };
}
