/**
 * The UI's routes (pure): paths under /ui/ <-> views. History-API URLs,
 * so every page has a real address (the control plane answers index.html
 * for any extension-less path under /ui/).
 */

export const BASE = "/ui";

export type Route =
  | { view: "login" }
  | { view: "services" }
  | { view: "service"; name: string }
  | { view: "topology" }
  | { view: "intentions" }
  | { view: "config"; kind?: string }
  | { view: "ca" }
  | { view: "not-found"; path: string };

export function parseRoute(pathname: string): Route {
  const rest = pathname.startsWith(`${BASE}/`)
    ? pathname.slice(BASE.length + 1)
    : pathname.replace(/^\/+/, "");
  const parts = rest.split("/").filter((p) => p !== "");
  let seg: string[];
  try {
    seg = parts.map((p) => decodeURIComponent(p));
  } catch {
    return { view: "not-found", path: pathname };
  }
  const [first, second] = seg;
  if (seg.length === 0 || (first === "services" && seg.length === 1)) return { view: "services" };
  if (first === "services" && second !== undefined && seg.length === 2)
    return { view: "service", name: second };
  if (
    seg.length === 1 &&
    (first === "login" || first === "topology" || first === "intentions" || first === "ca")
  )
    return { view: first };
  if (first === "config" && seg.length <= 2)
    return second ? { view: "config", kind: second } : { view: "config" };
  return { view: "not-found", path: pathname };
}

export function hrefOf(r: Route): string {
  switch (r.view) {
    case "services":
      return `${BASE}/services`;
    case "service":
      return `${BASE}/services/${encodeURIComponent(r.name)}`;
    case "config":
      return r.kind ? `${BASE}/config/${encodeURIComponent(r.kind)}` : `${BASE}/config`;
    case "not-found":
      return r.path;
    default:
      return `${BASE}/${r.view}`;
  }
}
