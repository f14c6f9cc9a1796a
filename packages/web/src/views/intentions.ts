/**
 * Intentions: every rule in precedence order; create, edit and delete
 * through the config API (POST /v1/config/apply, DELETE /v1/config/Intention/:name),
 * with the control plane's validation message shown next to the form; and
 * an Explain box (GET /v1/explain: the same answer as `weft explain`).
 */
import type { ExplainResponse } from "@weft/api";
import { ApiError, errorText } from "../api.js";
import { fill, h } from "../dom.js";
import {
  type Draft,
  type DraftSource,
  draftOf,
  type IntentionResource,
  isIntention,
  move,
  precedenceRows,
  resourceOf,
} from "../intentions-model.js";
import { hrefOf } from "../routes.js";
import type { View, ViewContext } from "../view.js";

export function intentionsView(ctx: ViewContext): View {
  const status = h("p", { class: "status", role: "status", "aria-live": "polite" }, "Loading…");
  const body = h("tbody");
  fill(body, h("tr", { class: "placeholder" }, h("td", { colspan: 6 }, "\u00a0")));
  let intentions: IntentionResource[] = [];
  let defaultPolicy: "allow" | "deny" = "deny";
  let disposed = false;

  // ---------------------------------------------------------------- table
  const load = async () => {
    try {
      const [list, mesh] = await Promise.all([
        ctx.api.listConfig("Intention"),
        ctx.api.get<{ defaultPolicy?: string }>("/v1/config/Mesh/mesh").catch(() => undefined),
      ]);
      if (disposed) return;
      intentions = (list as unknown[]).filter(isIntention);
      defaultPolicy = mesh?.defaultPolicy === "allow" ? "allow" : "deny";
      renderTable();
      status.textContent = `${intentions.length} intention${intentions.length === 1 ? "" : "s"} · mesh default policy: ${defaultPolicy}. An exact source wins over "*", which wins over the default.`;
      status.classList.remove("error");
    } catch (e) {
      status.textContent = `Cannot load intentions: ${errorText(e)}`;
      status.classList.add("error");
    }
  };

  const renderTable = () => {
    const rows = precedenceRows(intentions, defaultPolicy);
    let last = "";
    fill(
      body,
      rows.map((r) => {
        const first = r.destination !== last;
        last = r.destination;
        const it = intentions.find((i) => i.name === r.destination);
        return h(
          "tr",
          {
            class: `${first ? "group-start" : ""}${r.isDefault ? " default-row" : ""}`,
            "data-destination": r.destination,
            "data-source": r.isDefault ? "" : r.source,
            "data-action": r.action,
          },
          h(
            "td",
            {},
            first ? h("a", { href: hrefOf({ view: "service", name: r.destination }) }, r.destination) : "",
          ),
          h("td", { class: "num" }, r.rank),
          h("td", { class: "mono" }, r.source),
          h("td", {}, h("span", { class: `action ${r.action.toLowerCase()}` }, r.action)),
          h(
            "td",
            { class: "rules" },
            r.rules.length > 0
              ? h(
                  "ul",
                  {},
                  r.rules.map((x) => h("li", { class: "mono" }, x)),
                )
              : "",
          ),
          h(
            "td",
            { class: "row-actions" },
            first && it
              ? h(
                  "div",
                  { class: "buttons" },
                  h(
                    "button",
                    { type: "button", onclick: () => edit(it), "aria-label": `Edit intention ${it.name}` },
                    "Edit",
                  ),
                  deleteButton(it.name),
                )
              : "",
          ),
        );
      }),
    );
    if (rows.length === 0)
      fill(
        body,
        h(
          "tr",
          {},
          h(
            "td",
            { colspan: 6, class: "empty" },
            "No intentions: every call falls to the mesh default policy.",
          ),
        ),
      );
  };

  const deleteButton = (name: string) => {
    const b = h(
      "button",
      { type: "button", class: "danger", "aria-label": `Delete intention ${name}` },
      "Delete",
    );
    let armed = false;
    b.addEventListener("click", () => {
      if (!armed) {
        // A second press confirms (no modal dialog).
        armed = true;
        b.textContent = "Confirm delete";
        setTimeout(() => {
          armed = false;
          b.textContent = "Delete";
        }, 4_000);
        return;
      }
      b.disabled = true;
      ctx.api
        .deleteConfig("Intention", name)
        .then(() => load())
        .catch((e) => {
          status.textContent = `Cannot delete ${name}: ${errorText(e)}`;
          status.classList.add("error");
          b.disabled = false;
        });
    });
    return b;
  };

  // ---------------------------------------------------------------- form
  let draft: Draft = { destination: "", sources: [{ name: "", action: "allow" }] };
  const formTitle = h("h2", { id: "intention-form-title" }, "New intention");
  const destInput = h("input", {
    id: "intention-destination",
    name: "destination",
    autocomplete: "off",
    spellcheck: "false",
    "aria-describedby": "intention-error",
  });
  const sourcesBox = h("div", { class: "sources-editor" });
  const formError = h("p", {
    id: "intention-error",
    class: "form-error",
    role: "alert",
    "data-testid": "intention-error",
  });
  const formOk = h("p", { class: "form-ok", role: "status", "data-testid": "intention-ok" });
  const saveButton = h("button", { type: "submit", class: "primary" }, "Save");

  const renderSources = () => {
    fill(
      sourcesBox,
      draft.sources.map((src, i) => {
        const nameInput = h("input", {
          class: "source-name",
          "aria-label": `Source ${i + 1} service`,
          value: src.name,
          autocomplete: "off",
          spellcheck: "false",
          placeholder: 'service or "*"',
        });
        nameInput.addEventListener("input", () => {
          (draft.sources[i] as DraftSource).name = nameInput.value;
        });
        const actionSelect = h(
          "select",
          { class: "source-action", "aria-label": `Source ${i + 1} action` },
          h("option", { value: "allow", selected: src.action === "allow" }, "allow"),
          h("option", { value: "deny", selected: src.action === "deny" }, "deny"),
          src.permissions
            ? h(
                "option",
                { value: "L7", selected: src.action === "L7" },
                `L7 rules (${src.permissions.length})`,
              )
            : null,
        );
        actionSelect.addEventListener("change", () => {
          (draft.sources[i] as DraftSource).action = actionSelect.value as DraftSource["action"];
        });
        const btn = (label: string, text: string, fn: () => void, disabled = false) =>
          h(
            "button",
            { type: "button", class: "icon", "aria-label": label, title: label, disabled, onclick: fn },
            text,
          );
        return h(
          "div",
          { class: "source-row", "data-index": i },
          h("span", { class: "rank" }, `${i + 1}.`),
          nameInput,
          actionSelect,
          btn(
            `Move source ${i + 1} up`,
            "↑",
            () => {
              draft.sources = move(draft.sources, i, -1);
              renderSources();
            },
            i === 0,
          ),
          btn(
            `Move source ${i + 1} down`,
            "↓",
            () => {
              draft.sources = move(draft.sources, i, 1);
              renderSources();
            },
            i === draft.sources.length - 1,
          ),
          btn(`Remove source ${i + 1}`, "✕", () => {
            draft.sources = draft.sources.filter((_, j) => j !== i);
            renderSources();
          }),
        );
      }),
    );
  };

  const setDraft = (d: Draft, name?: string) => {
    draft = d;
    destInput.value = d.destination;
    destInput.readOnly = name !== undefined;
    formTitle.textContent = name ? `Edit intention ${name}` : "New intention";
    formError.textContent = "";
    renderSources();
  };

  const edit = (it: IntentionResource) => {
    setDraft(draftOf(it), it.name);
    formOk.textContent = "";
    destInput.focus();
  };

  const form = h(
    "form",
    {
      class: "intention-form",
      "aria-labelledby": "intention-form-title",
      "data-testid": "intention-form",
      novalidate: true,
    },
    formTitle,
    h("label", { for: "intention-destination" }, "Destination service"),
    destInput,
    h("span", { class: "label" }, 'Sources, in order (first exact name wins; "*" is every other caller)'),
    sourcesBox,
    h(
      "p",
      { class: "form-buttons" },
      h(
        "button",
        {
          type: "button",
          onclick: () => {
            draft.sources.push({ name: "", action: "allow" });
            renderSources();
            const inputs = sourcesBox.querySelectorAll<HTMLInputElement>("input.source-name");
            inputs[inputs.length - 1]?.focus();
          },
        },
        "Add source",
      ),
      saveButton,
      h(
        "button",
        {
          type: "button",
          onclick: () => {
            setDraft({ destination: "", sources: [{ name: "", action: "allow" }] });
            formOk.textContent = "";
          },
        },
        "Clear",
      ),
    ),
    formError,
    formOk,
  );
  destInput.addEventListener("input", () => {
    draft.destination = destInput.value;
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const resource = resourceOf(draft);
    saveButton.disabled = true;
    formError.textContent = "";
    formOk.textContent = "";
    ctx.api
      .apply([resource])
      .then(async (r) => {
        const action = r.applied[0]?.action ?? "applied";
        formOk.textContent = `Intention ${resource.name} ${action}.`;
        await load();
        const saved = intentions.find((i) => i.name === resource.name);
        if (saved) setDraft(draftOf(saved), saved.name);
      })
      .catch((e: unknown) => {
        // The control plane's message names the field at fault ("sources[0].name: ...").
        // One resource is sent: its "resources[0]." prefix says nothing to the user.
        formError.textContent =
          e instanceof ApiError ? e.message.replace(/^resources\[0\]\.?/, "") : errorText(e);
      })
      .finally(() => {
        saveButton.disabled = false;
      });
  });
  setDraft(draft);

  // ---------------------------------------------------------------- explain
  const field = (id: string, label: string, value = "", attrs: Record<string, string> = {}) => {
    const input = h("input", { id, name: id, value, autocomplete: "off", spellcheck: "false", ...attrs });
    return { input, el: h("div", { class: "field" }, h("label", { for: id }, label), input) };
  };
  const from = field("explain-from", "From");
  const to = field("explain-to", "To");
  const method = h(
    "select",
    { id: "explain-method", name: "method" },
    ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"].map((m) => h("option", { value: m }, m)),
  );
  const path = field("explain-path", "Path", "/");
  const explainResult = h("div", {
    class: "explain-result",
    "aria-live": "polite",
    "data-testid": "explain-result",
  });
  const explainForm = h(
    "form",
    { class: "explain-form", "data-testid": "explain-form" },
    h("h2", {}, "Explain a request"),
    h(
      "div",
      { class: "fields" },
      from.el,
      to.el,
      h("div", { class: "field" }, h("label", { for: "explain-method" }, "Method"), method),
      path.el,
      h(
        "div",
        { class: "field" },
        h("span", { class: "label" }, "\u00a0"),
        h("button", { type: "submit", class: "primary" }, "Explain"),
      ),
    ),
    explainResult,
  );
  explainForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams({
      from: from.input.value.trim(),
      to: to.input.value.trim(),
      method: method.value,
      path: path.input.value || "/",
    });
    fill(explainResult, h("p", { class: "muted" }, "Asking the control plane…"));
    ctx.api
      .get<ExplainResponse>(`/v1/explain?${q}`)
      .then((r) => fill(explainResult, renderExplain(r)))
      .catch((e) => fill(explainResult, h("p", { class: "form-error", role: "alert" }, errorText(e))));
  });

  void load();
  const el = h(
    "section",
    {},
    h("h1", { tabindex: "-1" }, "Intentions"),
    status,
    h(
      "div",
      { class: "intentions-layout" },
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "grid intentions", "data-testid": "intentions-table" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ["Destination", "#", "Source", "Action", "L7 rules", ""].map((c) =>
                h("th", { scope: "col" }, c),
              ),
            ),
          ),
          body,
        ),
      ),
      form,
    ),
    explainForm,
  );
  return {
    el,
    title: "Intentions",
    dispose: () => {
      disposed = true;
    },
  };
}

function ruleText(r: ExplainResponse["decision"]["rule"]): string {
  switch (r.kind) {
    case "source-action":
      return `source "${r.source}": ${r.action}`;
    case "permission":
      return `source "${r.source}", permission ${r.index + 1} (${r.description}): ${r.action}`;
    case "no-permission-matched":
      return `source "${r.source}": no permission matched (deny)`;
    case "default":
      return `mesh default policy: ${r.action}`;
    case "bad-path":
      return "the path is refused before authorization";
  }
}

function renderExplain(r: ExplainResponse): HTMLElement {
  const d = r.decision;
  return h(
    "div",
    { "data-allow": String(d.allow) },
    h(
      "p",
      { class: "decision" },
      h(
        "span",
        { class: `action ${d.allow ? "allow" : "deny"}`, "data-testid": "explain-decision" },
        d.allow ? "ALLOW" : "DENY",
      ),
      " ",
      `${r.request.method} ${r.request.target} from ${r.from} to ${r.destination ?? r.to}`,
      d.status !== null ? ` → ${d.status}` : "",
    ),
    h(
      "dl",
      {},
      h("dt", {}, "Rule"),
      h("dd", { "data-testid": "explain-rule" }, ruleText(d.rule)),
      h("dt", {}, "Reason"),
      h("dd", {}, d.reason),
      h("dt", {}, "Level"),
      h("dd", {}, d.level === "http" ? "HTTP (per request)" : "TCP (per connection)"),
      r.clusters[0]
        ? [
            h("dt", {}, "Goes to"),
            h(
              "dd",
              { class: "mono" },
              r.clusters
                .map(
                  (c) => `${c.name} (${c.endpoints.length} endpoint${c.endpoints.length === 1 ? "" : "s"})`,
                )
                .join(", "),
            ),
          ]
        : null,
    ),
  );
}
