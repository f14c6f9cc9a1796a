/**
 * Who an xDS-family stream speaks for, checked the same way for every
 * service on the xDS port (ADS in ads-server.ts, LRS in lrs-server.ts):
 * the first message's `node.id` must be a registered instance, the token
 * (`authorization: Bearer SECRET` call metadata, or the node metadata field
 * `weft_token`, which grpc-js-xds clients carry because their bootstrap
 * has no call credentials) must resolve, and it must grant write on the
 * instance's service: what a sidecar of that instance could do.
 *
 * Throws a WeftError (its `grpc` code is the stream's status): the caller
 * is a stream's first message, not the hot path.
 */
import type * as grpc from "@grpc/grpc-js";
import { instanceIdSchema } from "@weft/api";
import { NODE_TOKEN_KEY } from "@weft/api/client";
import { weftError } from "@weft/core";
import { authorize, DEV_ANONYMOUS, type Identity } from "../acl/acl.js";
import { servicePermission } from "../acl/policy.js";

export { NODE_TOKEN_KEY };

/** A stream (ADS or LRS) that names no node within this long is closed. */
export const FIRST_REQUEST_TIMEOUT_MS = 10_000;

/** An Envoy `config.core.v3.Node` as proto-loader decodes it (only what is read here). */
export interface XdsNode {
  id?: string;
  metadata?: unknown;
}

export interface NodeAuthDeps<I extends { service: string } = { service: string }> {
  catalog: { getInstance(id: string): I | undefined };
  acl: { resolve(secret: string): Identity | undefined };
  /** Anonymous streams act as operator (loopback dev mode only, as the HTTP API). */
  dev?: boolean | undefined;
}

export interface NodeAuth<I extends { service: string } = { service: string }> {
  nodeId: string;
  service: string;
  identity: Identity;
  /** The catalog instance the node id names (looked up once, here). */
  instance: I;
}

/** A string field of the node's metadata (a google.protobuf.Struct); at most 512 chars. */
export function nodeMeta(node: XdsNode | null | undefined, key: string): string | undefined {
  // The Struct comes from protobufjs's bundled struct.proto, whose fields are camelCase.
  type Value = { stringValue?: string; string_value?: string };
  const fields = (node?.metadata as { fields?: Record<string, Value> } | undefined)?.fields;
  const v = fields?.[key]?.stringValue ?? fields?.[key]?.string_value;
  return typeof v === "string" && v.length > 0 && v.length <= 512 ? v : undefined;
}

/** The stream's token: the authorization metadata first, then the node metadata. */
export function nodeToken(metadata: grpc.Metadata, node: XdsNode | null | undefined): string | undefined {
  const auth = metadata.get("authorization")[0];
  if (typeof auth === "string") {
    const m = /^Bearer\s+(\S+)$/i.exec(auth.trim());
    if (m) return m[1];
  }
  return nodeMeta(node, NODE_TOKEN_KEY);
}

/**
 * Authenticates and authorizes a stream from its first message's node.
 * `what` names that message in errors ("DiscoveryRequest", "LoadStatsRequest").
 */
export function authenticateNode<I extends { service: string }>(
  d: NodeAuthDeps<I>,
  metadata: grpc.Metadata,
  node: XdsNode | null | undefined,
  what: string,
): NodeAuth<I> {
  const nodeId = typeof node?.id === "string" ? node.id : "";
  if (nodeId === "") {
    throw weftError("WEFT_ERR_VALIDATION", { detail: `the first ${what} names no node.id` });
  }
  // Instance ids are 1-128 chars of A-Z a-z 0-9 . _ : - (instanceIdSchema): anything else is no instance,
  // and is not echoed back (a huge id would not fit the status trailer).
  if (!instanceIdSchema.safeParse(nodeId).success) {
    throw weftError("WEFT_ERR_VALIDATION", {
      detail: `node.id must be an instance id (1-128 chars of A-Z a-z 0-9 . _ : -)`,
    });
  }
  const secret = nodeToken(metadata, node);
  let identity: Identity | undefined;
  if (secret !== undefined) identity = d.acl.resolve(secret);
  else if (d.dev) identity = DEV_ANONYMOUS;
  if (!identity) {
    throw weftError("WEFT_ERR_UNAUTHENTICATED", {
      detail:
        secret === undefined
          ? `xDS client "${nodeId}" sent no token (authorization metadata or node.metadata.${NODE_TOKEN_KEY})`
          : `xDS client "${nodeId}": unknown token`,
    });
  }
  const inst = d.catalog.getInstance(nodeId);
  if (!inst) throw weftError("WEFT_ERR_NOT_FOUND", { what: `instance "${nodeId}" (node.id)` });
  authorize(identity, servicePermission(inst.service, "write"));
  return { nodeId, service: inst.service, identity, instance: inst };
}
