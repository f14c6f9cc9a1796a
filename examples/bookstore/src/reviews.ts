/**
 * reviews: readers' reviews of a book, as a gRPC service (@grpc/grpc-js,
 * plain h2c on loopback: its sidecar adds mTLS). Each answer carries the
 * book's rating, asked from the ratings service through this app's sidecar
 * (WEFT_UPSTREAM_RATINGS); when ratings cannot be asked (say, an intention
 * denies it) the reviews still come back, with `ratings_error` saying why.
 *
 *   bookstore.Reviews/GetReviews     (proto/reviews.proto)
 *   grpc.health.v1.Health/Check      SERVING, for the sidecar's health check
 */
import * as grpc from "@grpc/grpc-js";
import { errorText, getJson, INSTANCE, log, onShutdown, port, upstream } from "./lib.js";
import {
  type GetReviewsRequest,
  type GetReviewsResponse,
  healthService,
  type Review,
  reviewsService,
} from "./protos.js";

const ratings = upstream("ratings");

const REVIEWS: Record<string, Review[]> = {
  b1: [
    { reviewer: "Ai", text: "Cold planet, warm heart. Still startling." },
    { reviewer: "Tomás", text: "The chapter on the ice is unforgettable." },
  ],
  b2: [{ reviewer: "Noor", text: "Fifty-five cities and every one is Venice." }],
  b3: [
    { reviewer: "Grete", text: "Restraint as a tragedy. Perfect." },
    { reviewer: "Sam", text: "I did not expect to cry about a butler." },
  ],
  b4: [{ reviewer: "Lucía", text: "A whole village of whispers." }],
  b5: [{ reviewer: "Ravi", text: "A house of endless halls and tides; I want to live there." }],
};

async function getReviews(bookId: string): Promise<GetReviewsResponse> {
  const answer: GetReviewsResponse = {
    book_id: bookId,
    reviews: REVIEWS[bookId] ?? [],
    stars: 0,
    votes: 0,
    ratings_error: "",
    served_by: INSTANCE,
  };
  try {
    const r = await getJson<{ stars: number; votes: number }>(new URL(`/ratings/${bookId}`, ratings));
    if (r.status === 200 && r.body) {
      answer.stars = r.body.stars;
      answer.votes = r.body.votes;
    } else {
      answer.ratings_error = `ratings answered ${r.status}: ${r.text.trim().slice(0, 200)}`;
    }
  } catch (e) {
    answer.ratings_error = `ratings unreachable: ${errorText(e)}`;
  }
  return answer;
}

const server = new grpc.Server();
server.addService(reviewsService, {
  GetReviews(
    call: grpc.ServerUnaryCall<GetReviewsRequest, GetReviewsResponse>,
    cb: grpc.sendUnaryData<GetReviewsResponse>,
  ) {
    const id = call.request.book_id;
    if (!/^[a-z0-9]{1,16}$/.test(id)) {
      cb({ code: grpc.status.INVALID_ARGUMENT, details: `bad book id ${JSON.stringify(id)}` });
      return;
    }
    getReviews(id).then(
      (r) => cb(null, r),
      (e: unknown) => cb({ code: grpc.status.INTERNAL, details: errorText(e) }),
    );
  },
});
server.addService(healthService, {
  Check(_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<{ status: string }>) {
    cb(null, { status: "SERVING" });
  },
});
server.bindAsync(`127.0.0.1:${port()}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
  if (err) {
    log(`cannot listen: ${err.message}`);
    process.exit(1);
  }
  log(`reviews (gRPC) listening on 127.0.0.1:${bound}; ratings at ${ratings.host}`);
});
onShutdown(
  () =>
    new Promise<void>((done) => {
      server.tryShutdown(() => done());
    }),
);
