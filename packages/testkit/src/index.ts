export * from "./ports.js";
export * from "./test-ca.js";
export * from "./virtual-clock.js";
