/**
 * The ResourceModel of the config service, built on the schemas of
 * packages/api (parseResource, kindFromString, KINDS, validateSet).
 */
import {
  deleteIssues,
  formatPath,
  KINDS,
  kindFromString,
  parseResource,
  type Resource,
  validateSet,
} from "@weft/api";
import type { ResourceModel } from "./config.js";

export const apiResourceModel: ResourceModel = {
  kinds: KINDS,
  kindFromString,
  parse(value) {
    const r = parseResource(value);
    if (!r.ok)
      return { ok: false, issues: r.issues.map((i) => ({ path: formatPath(i.path), message: i.message })) };
    return { ok: true, kind: r.resource.kind, name: r.resource.name, resource: r.resource };
  },
  validateSet(batch, existing) {
    // The control plane's set is not a `weft up` file: no local-mesh port/upstream rules.
    return validateSet(batch as Resource[], existing as Resource[], { localMesh: false }).map((i) => ({
      path: `resources[${i.index}] (${i.kind} "${i.name}")${i.path.length ? `.${formatPath(i.path)}` : ""}`,
      message: i.message,
    }));
  },
  deleteIssues(kind, name, existing) {
    return deleteIssues(kind, name, existing as Resource[]);
  },
};
