import { defineConfig } from "vite";

// The UI is served by the control plane under /ui/ (same origin as the API): relative asset URLs,
// no CDN, everything bundled into dist/.
export default defineConfig({
  root: "src",
  base: "/ui/",
  build: { outDir: "../dist", emptyOutDir: true, target: "es2022", sourcemap: false },
});
