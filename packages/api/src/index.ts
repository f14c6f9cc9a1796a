export * from "./catalog.js";
export * from "./client.js";
export * from "./documents.js";
export * from "./names.js";
export * from "./resources/index.js";
export * from "./safe-regex.js";
export * from "./validate.js";
