/** Config: every stored resource, by kind, as YAML (or JSON). Data: GET /v1/config/:kind. */
import type { ClientResource } from "@weft/api";
import { errorText } from "../api.js";
import { fill, h } from "../dom.js";
import { hrefOf } from "../routes.js";
import type { View, ViewContext } from "../view.js";
import { toYaml } from "../yaml.js";

export const KINDS = [
  "Mesh",
  "Intention",
  "ServiceDefaults",
  "Route",
  "Split",
  "Resolver",
  "Gateway",
  "Workload",
] as const;

export function configView(ctx: ViewContext, kind: string | undefined): View {
  const current = KINDS.find((k) => k.toLowerCase() === (kind ?? "").toLowerCase()) ?? "Intention";
  let asJson = false;
  let items: ClientResource[] = [];
  const status = h("p", { class: "status", role: "status", "aria-live": "polite" }, "Loading…");
  const list = h("div", { class: "config-list", "data-testid": "config-list" });
  const toggle = h("button", { type: "button", "aria-pressed": "false" }, "Show JSON");
  const render = () => {
    fill(
      list,
      items.map((r) =>
        h(
          "article",
          { class: "resource", "data-kind": r.kind, "data-name": r.name },
          h("h2", {}, h("span", { class: "muted" }, `${r.kind} `), r.name),
          h("pre", { class: "yaml" }, asJson ? `${JSON.stringify(r, null, 2)}\n` : toYaml(r)),
        ),
      ),
    );
    if (items.length === 0) fill(list, h("p", { class: "empty" }, `No ${current} resources.`));
  };
  toggle.addEventListener("click", () => {
    asJson = !asJson;
    toggle.textContent = asJson ? "Show YAML" : "Show JSON";
    toggle.setAttribute("aria-pressed", String(asJson));
    render();
  });
  ctx.api
    .listConfig(current)
    .then((r) => {
      items = [...r].sort((a, b) => (a.name < b.name ? -1 : 1));
      status.textContent = `${items.length} ${current} resource${items.length === 1 ? "" : "s"}`;
      render();
    })
    .catch((e) => {
      status.textContent = `Cannot load ${current}: ${errorText(e)}`;
      status.classList.add("error");
    });
  const el = h(
    "section",
    {},
    h("h1", { tabindex: "-1" }, "Config"),
    h(
      "nav",
      { class: "tabs", "aria-label": "Resource kinds" },
      KINDS.map((k) =>
        h(
          "a",
          { href: hrefOf({ view: "config", kind: k }), "aria-current": k === current ? "page" : undefined },
          k,
        ),
      ),
    ),
    h("div", { class: "toolbar" }, status, toggle),
    list,
  );
  return { el, title: `Config: ${current}`, dispose: () => {} };
}
