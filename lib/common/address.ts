/**
 * How addresses are written in messages, the same for DNS servers, listeners and metrics.
 *
 * @module
 */

/**
 * Formats an address and port as ADDR:PORT, IPv6 as [ADDR]:PORT.
 *
 * @example
 * ```ts
 * formatHostPort({ host: "::1", port: 53 }); // "[::1]:53"
 * ```
 */
export function formatHostPort(server: { host: string; port: number }): string {
  return server.host.includes(":")
    ? `[${server.host}]:${server.port}`
    : `${server.host}:${server.port}`;
}
