import type { Readable, Writable } from "node:stream";

/**
 * Moves a body from `src` to `dst` with backpressure, without ending `dst`
 * (the relay ends it, with trailers). What `src.pipe(dst, { end: false })`
 * does for a proxy, with two listeners instead of pipe's eight and their
 * removal at the end: measurable per request on the hot path.
 *
 * `onChunk` sees each chunk's size as it goes. The returned function stops
 * the pump (as `unpipe` would); `src` is left paused or flowing as it was.
 */
export function pump(src: Readable, dst: Writable, onChunk?: (bytes: number) => void): () => void {
  let waiting = false;
  const resume = (): void => {
    waiting = false;
    src.resume();
  };
  const onData = (chunk: Buffer): void => {
    onChunk?.(chunk.length);
    if (!dst.write(chunk) && !waiting) {
      waiting = true;
      src.pause();
      dst.once("drain", resume);
    }
  };
  src.on("data", onData);
  return () => {
    src.removeListener("data", onData);
    if (waiting) dst.removeListener("drain", resume);
  };
}
