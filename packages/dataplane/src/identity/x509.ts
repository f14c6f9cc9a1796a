// tsyringe inside @peculiar/x509 throws at import unless the Reflect metadata polyfill is loaded first.
import "reflect-metadata";

export * from "@peculiar/x509";
