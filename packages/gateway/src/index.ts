/**
 * `@weft/gateway`: the mesh's edges (issue #9). The ingress gateway and the
 * terminating gateway are assembled here from the data plane's parts.
 */
export {};
