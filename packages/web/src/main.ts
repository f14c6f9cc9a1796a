/**
 * The UI's entry: the shell (header, nav, main), the router (History API
 * under /ui/), and the login flow. At start the app asks whether it may
 * call the API: with the stored token, or with none (a `--dev` server
 * accepts anonymous calls: then there is no login at all). A 401 later on
 * clears the token and shows the login page, which returns to where the
 * user was.
 */
import "./style.css";
import { Api } from "./api.js";
import { h } from "./dom.js";
import { BASE, hrefOf, parseRoute, type Route } from "./routes.js";
import type { View, ViewContext } from "./view.js";
import { caView } from "./views/ca.js";
import { configView } from "./views/config.js";
import { intentionsView } from "./views/intentions.js";
import { loginView } from "./views/login.js";
import { serviceView } from "./views/service.js";
import { servicesView } from "./views/services.js";
import { topologyView } from "./views/topology.js";

const NAV: { label: string; route: Route; match: Route["view"][] }[] = [
  { label: "Services", route: { view: "services" }, match: ["services", "service"] },
  { label: "Topology", route: { view: "topology" }, match: ["topology"] },
  { label: "Intentions", route: { view: "intentions" }, match: ["intentions"] },
  { label: "Config", route: { view: "config" }, match: ["config"] },
  { label: "CA", route: { view: "ca" }, match: ["ca"] },
];

type AuthState = "unknown" | "token" | "dev" | "none";

function start(root: HTMLElement): void {
  let auth: AuthState = "unknown";
  let view: View | undefined;
  /** Where to go back after a login. */
  let after = `${BASE}/services`;

  const api = new Api({
    onUnauthenticated: () => {
      if (auth === "none") return;
      auth = "none";
      after = location.pathname;
      navigate(`${BASE}/login`, true);
    },
  });
  const ctx: ViewContext = { api, navigate: (href) => navigate(href), now: () => Date.now() };

  const navLinks = NAV.map((n) => h("a", { href: hrefOf(n.route) }, n.label));
  const modeBadge = h("span", { class: "mode", "data-testid": "auth-mode" });
  const logout = h(
    "button",
    {
      type: "button",
      class: "link",
      onclick: () => {
        api.setToken(null);
        auth = "none";
        after = `${BASE}/services`;
        navigate(`${BASE}/login`);
      },
    },
    "Log out",
  );
  const header = h(
    "header",
    { class: "top" },
    h("a", { class: "brand", href: `${BASE}/services` }, "weft"),
    h("nav", { "aria-label": "Main" }, navLinks),
    h("span", { class: "spacer" }),
    modeBadge,
    logout,
  );
  const main = h("main", { id: "main", tabindex: "-1" });
  root.replaceChildren(h("a", { class: "skip", href: "#main" }, "Skip to content"), header, main);

  const render = () => {
    view?.dispose();
    let route = parseRoute(location.pathname);
    if (auth === "none" && route.view !== "login") route = { view: "login" };
    if (auth !== "none" && route.view === "login") route = { view: "services" };
    header.hidden = route.view === "login";
    modeBadge.textContent = auth === "dev" ? "dev mode: no token needed" : "";
    logout.hidden = auth !== "token";
    for (const [i, a] of navLinks.entries()) {
      const n = NAV[i];
      if (n?.match.includes(route.view)) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    switch (route.view) {
      case "login":
        view = loginView(ctx, after, () => {
          auth = "token";
        });
        break;
      case "services":
        view = servicesView(ctx);
        break;
      case "service":
        view = serviceView(ctx, route.name);
        break;
      case "topology":
        view = topologyView(ctx);
        break;
      case "intentions":
        view = intentionsView(ctx);
        break;
      case "config":
        view = configView(ctx, route.kind);
        break;
      case "ca":
        view = caView(ctx);
        break;
      default:
        view = {
          el: h(
            "section",
            {},
            h("h1", { tabindex: "-1" }, "Not found"),
            h("p", {}, h("a", { href: `${BASE}/services` }, "Back to the services")),
          ),
          title: "Not found",
          dispose: () => {},
        };
    }
    main.replaceChildren(view.el);
    document.title = `${view.title} · Weft`;
  };

  let first = true;
  const navigate = (href: string, replace = false) => {
    if (href !== location.pathname) {
      if (replace) history.replaceState(null, "", href);
      else history.pushState(null, "", href);
    }
    render();
    if (!first) {
      // Move focus to the new page's heading, as a page load would (screen readers, keyboard).
      main.querySelector<HTMLElement>("h1")?.focus({ preventScroll: true });
      window.scrollTo(0, 0);
    }
    first = false;
  };

  // Same-origin links under /ui/ navigate in place (modifier keys keep the browser's behaviour).
  document.addEventListener("click", (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey)
      return;
    const a = (ev.target as Element | null)?.closest?.("a");
    const href = a?.getAttribute("href");
    if (!a || !href?.startsWith(`${BASE}/`) || a.getAttribute("target")) return;
    ev.preventDefault();
    navigate(href);
  });
  window.addEventListener("popstate", () => render());

  const boot = async () => {
    const stored = api.hasToken;
    // With no stored token, a --dev server answers anonymous calls: no login then.
    const ok = await Api.probe(api.token).catch(() => false);
    if (ok) auth = stored ? "token" : "dev";
    else {
      if (stored) api.setToken(null);
      auth = "none";
      const route = parseRoute(location.pathname);
      if (route.view !== "login" && route.view !== "not-found" && location.pathname !== `${BASE}/`)
        after = location.pathname;
    }
    const home =
      location.pathname === "/" || location.pathname === `${BASE}/` || location.pathname === `${BASE}/login`;
    if (auth === "none") navigate(`${BASE}/login`, true);
    else navigate(home ? `${BASE}/services` : location.pathname, true);
  };
  void boot();
}

const root = document.getElementById("app");
if (root) start(root);
