/**
 * The gRPC definitions (proto/*.proto, loaded at run time with
 * @grpc/proto-loader): bookstore.Reviews, which frontend calls and reviews
 * serves, and grpc.health.v1.Health, which reviews serves for its sidecar.
 */
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const protoDir = fileURLToPath(new URL("../proto/", import.meta.url));

const definition = protoLoader.loadSync([`${protoDir}reviews.proto`, `${protoDir}health.proto`], {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
});
const loaded = grpc.loadPackageDefinition(definition) as unknown as {
  bookstore: { Reviews: grpc.ServiceClientConstructor };
  grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
};

export const ReviewsClient = loaded.bookstore.Reviews;
export const reviewsService = loaded.bookstore.Reviews.service;
export const healthService = loaded.grpc.health.v1.Health.service;

export interface Review {
  reviewer: string;
  text: string;
}

export interface GetReviewsRequest {
  book_id: string;
}

export interface GetReviewsResponse {
  book_id: string;
  reviews: Review[];
  stars: number;
  votes: number;
  ratings_error: string;
  served_by: string;
}
