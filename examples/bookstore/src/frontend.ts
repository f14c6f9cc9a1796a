/**
 * frontend: the shop's web page (HTTP). For `GET /` it asks catalog for the
 * books (HTTP JSON) and reviews for each book's reviews and rating (gRPC),
 * both through its sidecar, and renders one HTML page from the answers.
 * When a call fails (an intention denies it, a service is down) the page
 * says which and why, and the answer is 502 so that loadgen counts it.
 *
 *   GET /         the page (x-catalog-version says which catalog answered)
 *   GET /healthz  for the sidecar's health check (does not call upstreams)
 */
import * as grpc from "@grpc/grpc-js";
import { errorText, getJson, INSTANCE, log, serveHttp, upstream } from "./lib.js";
import { type GetReviewsRequest, type GetReviewsResponse, ReviewsClient } from "./protos.js";

const catalogUrl = upstream("catalog");
const reviewsAddr = upstream("reviews");

interface Book {
  id: string;
  title: string;
  author: string;
  year: number;
  price?: string;
  format?: string;
}

interface CatalogAnswer {
  version: string;
  servedBy: string;
  books: Book[];
}

// One HTTP/2 channel to our sidecar's reviews listener, plain text on loopback.
const reviews = new ReviewsClient(
  reviewsAddr.host,
  grpc.credentials.createInsecure(),
) as unknown as grpc.Client & {
  GetReviews(
    req: GetReviewsRequest,
    options: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res: GetReviewsResponse) => void,
  ): grpc.ClientUnaryCall;
};

function getReviews(bookId: string): Promise<GetReviewsResponse> {
  return new Promise((resolve, reject) => {
    const req: GetReviewsRequest = { book_id: bookId };
    reviews.GetReviews(
      req,
      { deadline: Date.now() + 2_000 },
      (err: grpc.ServiceError | null, res: GetReviewsResponse) => {
        if (err) reject(new Error(`${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`));
        else resolve(res);
      },
    );
  });
}

const esc = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c,
  );

function stars(n: number): string {
  const full = Math.round(n);
  return "★".repeat(full) + "☆".repeat(Math.max(0, 5 - full));
}

interface Page {
  html: string;
  status: number;
  catalogVersion: string;
}

async function render(): Promise<Page> {
  const started = Date.now();
  const problems: string[] = [];
  let catalog: CatalogAnswer | undefined;
  try {
    const r = await getJson<CatalogAnswer>(new URL("/books", catalogUrl));
    if (r.status === 200 && r.body) catalog = r.body;
    else problems.push(`catalog answered ${r.status}: ${r.text.trim().slice(0, 300)}`);
  } catch (e) {
    problems.push(`catalog unreachable: ${errorText(e)}`);
  }
  const books = catalog?.books ?? [];
  const answers = await Promise.allSettled(books.map((b) => getReviews(b.id)));
  const reviewsById = new Map<string, GetReviewsResponse>();
  let reviewsFailure: string | undefined;
  let ratingsFailure: string | undefined;
  answers.forEach((a, i) => {
    if (a.status === "fulfilled") {
      reviewsById.set(books[i]?.id ?? "", a.value);
      if (a.value.ratings_error) ratingsFailure ??= a.value.ratings_error;
    } else reviewsFailure ??= errorText(a.reason);
  });
  if (reviewsFailure) problems.push(`reviews failed: ${reviewsFailure}`);
  if (ratingsFailure) problems.push(`ratings (asked by reviews) failed: ${ratingsFailure}`);

  const v2 = catalog?.version === "v2";
  const servedBy = [...new Set([...reviewsById.values()].map((r) => r.served_by))].join(", ");
  const rows = books
    .map((b) => {
      const r = reviewsById.get(b.id);
      const rating =
        r && !r.ratings_error
          ? `<span class="stars">${stars(r.stars)}</span> ${r.stars.toFixed(1)} <small>(${r.votes} votes)</small>`
          : '<span class="missing">no rating</span>';
      const list = r
        ? r.reviews.map((x) => `<li>“${esc(x.text)}” — ${esc(x.reviewer)}</li>`).join("")
        : '<li class="missing">reviews unavailable</li>';
      return `<tr><td><b>${esc(b.title)}</b><br><small>${esc(b.author)}, ${b.year}</small></td>${
        v2 ? `<td>${esc(b.price ?? "")}<br><small>${esc(b.format ?? "")}</small></td>` : ""
      }<td>${rating}</td><td><ul>${list}</ul></td></tr>`;
    })
    .join("\n");
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Weft bookstore</title>
<style>
 body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#222}
 table{border-collapse:collapse;width:100%} td,th{border-bottom:1px solid #ddd;padding:.5rem;vertical-align:top;text-align:left}
 .badge{display:inline-block;padding:.1rem .5rem;border-radius:.5rem;background:${v2 ? "#7b3fe4" : "#1f7a4d"};color:#fff}
 .stars{color:#d89b00} .missing{color:#a00} .problems{background:#fee;border:1px solid #c00;padding:.5rem 1rem}
 ul{margin:0;padding-left:1.2rem} footer{margin-top:1rem;color:#666;font-size:.9em}
</style></head><body>
<h1>Weft bookstore</h1>
<p>catalog <span class="badge" data-catalog-version="${esc(catalog?.version ?? "none")}">${esc(catalog?.version ?? "unavailable")}</span>
 served by <code>${esc(catalog?.servedBy ?? "-")}</code>; reviews by <code>${esc(servedBy || "-")}</code>; ratings through reviews.</p>
${problems.length > 0 ? `<div class="problems"><b>Some calls failed:</b><ul>${problems.map((p) => `<li>${esc(p)}</li>`).join("")}</ul></div>` : ""}
<table><tr><th>Book</th>${v2 ? "<th>Price</th>" : ""}<th>Rating</th><th>Reviews</th></tr>
${rows}
</table>
<footer>Rendered by <code>${esc(INSTANCE)}</code> in ${Date.now() - started} ms. Every call behind this page went
app → sidecar → mTLS → sidecar → app, allowed by an intention.</footer>
</body></html>
`;
  return { html, status: problems.length > 0 ? 502 : 200, catalogVersion: catalog?.version ?? "none" };
}

serveHttp("frontend", async (req, res) => {
  const path = (req.url ?? "/").split("?")[0];
  if (path === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok\n");
    return;
  }
  if (path !== "/" || (req.method !== "GET" && req.method !== "HEAD")) {
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found: try GET /\n");
    return;
  }
  const page = await render();
  res.writeHead(page.status, {
    "content-type": "text/html; charset=utf-8",
    "content-length": Buffer.byteLength(page.html),
    "x-catalog-version": page.catalogVersion,
    "cache-control": "no-store",
  });
  res.end(req.method === "HEAD" ? undefined : page.html);
});
log(`catalog at ${catalogUrl.host}, reviews at ${reviewsAddr.host}`);
