export * from "./ports.js";
export * from "./virtual-clock.js";
