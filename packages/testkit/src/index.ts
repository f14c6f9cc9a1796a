export * from "./etcd-server.js";
export * from "./partition-proxy.js";
export * from "./ports.js";
export * from "./test-ca.js";
export * from "./virtual-clock.js";
