/**
 * ratings: stars per book, as a small HTTP JSON service. Only reviews calls
 * it (the Intention allows exactly GET /ratings/* from reviews).
 *
 *   GET /ratings/:bookId  {bookId, stars, votes, servedBy}
 *   GET /healthz
 */
import { INSTANCE, sendJson, serveHttp } from "./lib.js";

const RATINGS: Record<string, { stars: number; votes: number }> = {
  b1: { stars: 4.6, votes: 1284 },
  b2: { stars: 4.3, votes: 902 },
  b3: { stars: 4.5, votes: 1510 },
  b4: { stars: 4.2, votes: 388 },
  b5: { stars: 4.4, votes: 2011 },
};

serveHttp("ratings", (req, res) => {
  const path = (req.url ?? "/").split("?")[0] ?? "/";
  if (path === "/healthz") {
    sendJson(res, 200, { ok: true });
    return;
  }
  const m = /^\/ratings\/([a-z0-9]+)$/.exec(path);
  if (req.method !== "GET" || !m) {
    sendJson(res, 404, { error: "try GET /ratings/<bookId>" });
    return;
  }
  const bookId = m[1] as string;
  const r = RATINGS[bookId];
  if (!r) {
    sendJson(res, 404, { error: `no ratings for ${bookId}` });
    return;
  }
  sendJson(res, 200, { bookId, ...r, servedBy: INSTANCE });
});
