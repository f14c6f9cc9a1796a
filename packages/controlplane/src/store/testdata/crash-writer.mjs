// Child process for sqlite-crash.test.ts: writes until it is killed with
// SIGKILL. Each step is one txn writing /crash/<i> and /mirror/<i> with the
// same value; the index is printed only after the txn's promise resolved, so
// every printed index is an acknowledged write. Stdout on a pipe is
// synchronous on Linux, so a printed line has left the process.
//
// argv: <compiled sqlite.js URL> <store path> <first index>
const [distUrl, path, first] = process.argv.slice(2);
const { SqliteStore } = await import(distUrl);

/** Deterministic value of varying size (0-20 KB) so commits span pages; sqlite-crash.test.ts has the same. */
function valueFor(i) {
  return `${i}:${"x".repeat((i * 7919) % 20_000)}`;
}

const store = await SqliteStore.open(path, { historyLimit: 50 });
for (let i = Number(first); ; i++) {
  const value = valueFor(i);
  await store.txn({
    compare: [],
    success: [
      { type: "put", key: `/crash/${i}`, value },
      { type: "put", key: `/mirror/${i}`, value },
    ],
  });
  process.stdout.write(`${i}\n`);
}
