#!/usr/bin/env node
// The sidecar (`weft proxy`) starts through a light entry: one per workload
// instance, its start-up time and memory matter (see proxy-main.ts).
const entry = process.argv[2] === "proxy" ? await import("../proxy-main.js") : await import("../main.js");
await entry.main();
