/**
 * catalog: the books for sale, as a JSON API (HTTP). Two versions run as two
 * Workloads of one service `catalog` (CATALOG_VERSION, and `meta: {version}`
 * on their instances for the Resolver's subsets): v2 adds prices, formats
 * and a new arrival, so the page shows which one answered.
 *
 *   GET /books      {version, servedBy, books: [...]}
 *   GET /books/:id  one book, 404 when unknown
 *   GET /healthz    for the sidecar's health check
 */
import { INSTANCE, log, sendJson, serveHttp } from "./lib.js";

const VERSION = process.env.CATALOG_VERSION === "v2" ? "v2" : "v1";

interface Book {
  id: string;
  title: string;
  author: string;
  year: number;
  price?: string;
  format?: string;
}

const BOOKS: Book[] = [
  { id: "b1", title: "The Left Hand of Darkness", author: "Ursula K. Le Guin", year: 1969 },
  { id: "b2", title: "Invisible Cities", author: "Italo Calvino", year: 1972 },
  { id: "b3", title: "The Remains of the Day", author: "Kazuo Ishiguro", year: 1989 },
  { id: "b4", title: "Pedro Páramo", author: "Juan Rulfo", year: 1955 },
];

const V2_EXTRAS: Record<string, Pick<Book, "price" | "format">> = {
  b1: { price: "€12.50", format: "paperback" },
  b2: { price: "€10.90", format: "paperback" },
  b3: { price: "€14.00", format: "hardcover" },
  b4: { price: "€9.80", format: "paperback" },
  b5: { price: "€18.00", format: "hardcover" },
};

const books: Book[] =
  VERSION === "v1"
    ? BOOKS
    : [...BOOKS, { id: "b5", title: "Piranesi", author: "Susanna Clarke", year: 2020 }].map((b) => ({
        ...b,
        ...V2_EXTRAS[b.id],
      }));

serveHttp(`catalog ${VERSION}`, (req, res) => {
  const path = (req.url ?? "/").split("?")[0] ?? "/";
  if (path === "/healthz") {
    sendJson(res, 200, { ok: true, version: VERSION });
    return;
  }
  if (req.method !== "GET") {
    sendJson(res, 405, { error: "GET only" });
    return;
  }
  res.setHeader("x-catalog-version", VERSION);
  if (path === "/books") {
    sendJson(res, 200, { version: VERSION, servedBy: INSTANCE, books });
    return;
  }
  const m = /^\/books\/([a-z0-9]+)$/.exec(path);
  const book = m ? books.find((b) => b.id === m[1]) : undefined;
  if (book) sendJson(res, 200, { version: VERSION, servedBy: INSTANCE, book });
  else sendJson(res, 404, { error: `no book at ${path}` });
});
log(`catalog ${VERSION}: ${books.length} books`);
