export * from "./backoff.js";
export * from "./clock.js";
export * from "./der.js";
export * from "./disposable.js";
export * from "./duration.js";
export * from "./errors.js";
export * from "./ids.js";
export * from "./trace.js";
