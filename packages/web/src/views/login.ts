/** The token login: the ACL token is checked against the API, then kept in sessionStorage. */
import { Api } from "../api.js";
import { h } from "../dom.js";
import type { View, ViewContext } from "../view.js";

export function loginView(ctx: ViewContext, next: string, onLogin: () => void): View {
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "current-password",
    spellcheck: "false",
    required: true,
    "aria-describedby": "token-help token-error",
  });
  const error = h("p", { id: "token-error", class: "form-error", role: "alert" });
  const button = h("button", { type: "submit", class: "primary" }, "Log in");
  const form = h(
    "form",
    { class: "login-form", "data-testid": "login-form" },
    h("label", { for: "token" }, "ACL token"),
    input,
    h(
      "p",
      { id: "token-help", class: "help" },
      "The secret of an ACL token, e.g. the bootstrap management token printed by ",
      h("code", {}, "weft server"),
      ". It is kept in this tab only.",
    ),
    error,
    button,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    if (token === "") {
      error.textContent = "Enter a token.";
      return;
    }
    button.disabled = true;
    error.textContent = "";
    Api.probe(token)
      .then((ok) => {
        if (!ok) {
          error.textContent = "This token is not accepted (unknown or revoked).";
          input.select();
          return;
        }
        ctx.api.setToken(token);
        onLogin();
        ctx.navigate(next);
      })
      .catch(() => {
        error.textContent = "The control plane cannot be reached.";
      })
      .finally(() => {
        button.disabled = false;
      });
  });
  const el = h(
    "section",
    { class: "login" },
    h("h1", { tabindex: "-1" }, "Weft"),
    h("p", { class: "lede" }, "Log in to the control plane."),
    form,
  );
  queueMicrotask(() => input.focus());
  return { el, title: "Log in", dispose: () => {} };
}
