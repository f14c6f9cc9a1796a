export { EXIT, type ExitCode, exitCodeFor } from "./exit-codes.js";
export { buildProgram, main, run } from "./main.js";
