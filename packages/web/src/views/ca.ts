/** CA: the trust bundle's roots with their expiry. Data: GET /v1/ca/roots every 10 s. */
import type { CaRootsResponse } from "@weft/api";
import { errorText } from "../api.js";
import { fill, h } from "../dom.js";
import { formatDate, formatExpiry } from "../format.js";
import { poll, type View, type ViewContext } from "../view.js";

export function caView(ctx: ViewContext): View {
  const status = h("p", { class: "status", role: "status", "aria-live": "polite" }, "Loading…");
  const body = h("tbody");
  fill(body, h("tr", { class: "placeholder" }, h("td", { colspan: 6 }, "\u00a0")));
  const pems = h("div", {});
  const stop = poll(async (signal) => {
    try {
      const r = await ctx.api.get<CaRootsResponse>("/v1/ca/roots", signal);
      const now = ctx.now();
      status.textContent = `Trust domain ${r.trustDomain} · ${r.roots.length} root${r.roots.length === 1 ? "" : "s"} in the bundle`;
      status.classList.remove("error");
      fill(
        body,
        r.roots.map((root) => {
          const exp = formatExpiry(root.notAfter, now, root.notBefore);
          return h(
            "tr",
            { "data-root": root.id, "data-state": root.state },
            h(
              "td",
              { class: "mono" },
              root.id,
              root.id === r.activeRootId ? h("span", { class: "badge passing" }, "active") : null,
            ),
            h("td", {}, root.state),
            h("td", {}, formatDate(root.notBefore)),
            h(
              "td",
              {},
              formatDate(root.notAfter),
              " ",
              h("span", { class: `expiry ${exp.level}` }, `(${exp.text})`),
            ),
            h("td", { class: "num" }, root.leavesOutstanding),
            h("td", { class: "mono small" }, root.fingerprintSha256),
          );
        }),
      );
      fill(
        pems,
        r.roots.map((root) =>
          h(
            "details",
            {},
            h("summary", {}, `Certificate of ${root.id} (PEM)`),
            h("pre", { class: "yaml" }, root.certificatePem),
          ),
        ),
      );
    } catch (e) {
      if (signal.aborted) return;
      status.textContent = `Cannot load the trust bundle: ${errorText(e)}`;
      status.classList.add("error");
      throw e;
    }
  }, 10_000);
  const el = h(
    "section",
    {},
    h("h1", { tabindex: "-1" }, "Certificate authority"),
    status,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "grid roots", "data-testid": "roots-table" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Root", "State", "Not before", "Not after", "Leaves", "SHA-256 fingerprint"].map((c) =>
              h("th", { scope: "col" }, c),
            ),
          ),
        ),
        body,
      ),
    ),
    pems,
  );
  return { el, title: "CA", dispose: stop };
}
