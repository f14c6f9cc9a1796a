/**
 * The subset of a pino logger the data plane writes to. The proxy passes its
 * pino instance; tests pass a recorder. Data-plane code never logs without one.
 */
export interface DataplaneLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}
