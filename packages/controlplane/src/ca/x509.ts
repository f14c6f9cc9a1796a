// @peculiar/x509 resolves its algorithm registry through tsyringe, which needs
// the Reflect metadata polyfill loaded first. Import the library only from here.
import "reflect-metadata";

export * from "@peculiar/x509";
