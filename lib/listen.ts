/**
 * Listening addresses: `HOST:PORT` for TCP, `unix:/path` for unix sockets (replacing a stale
 * socket file at start, with the mode and group Postfix needs to connect).
 *
 * @module
 */

import { formatHostPort } from "./dns_servers.ts";

/** Where to listen. */
export type ListenAddress =
  | { transport: "tcp"; host: string; port: number }
  | { transport: "unix"; path: string };

/**
 * Parses `HOST:PORT`, `[IPv6]:PORT` or `unix:/absolute/path`.
 *
 * @example
 * ```ts
 * parseListenAddress("unix:/var/spool/postfix/private/mxroute"); // { transport: "unix", ... }
 * parseListenAddress("127.0.0.1:10100"); // { transport: "tcp", host: "127.0.0.1", port: 10100 }
 * ```
 */
export function parseListenAddress(text: string): ListenAddress | { error: string } {
  if (text.startsWith("unix:")) {
    const path = text.slice(5);
    if (!path.startsWith("/")) return { error: `"${text}": a unix socket needs an absolute path` };
    return { transport: "unix", path };
  }
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port < 1 || port > 65535) {
    return { error: `"${text}": expected HOST:PORT, [IPv6]:PORT or unix:/path` };
  }
  return { transport: "tcp", host: match[1] ?? match[2], port };
}

/** Formats an address for logs. */
export function formatListenAddress(address: ListenAddress): string {
  return address.transport === "unix" ? `unix:${address.path}` : formatHostPort(address);
}

/** Options for unix sockets. */
export interface UnixSocketOptions {
  /** Permission bits, e.g. 0o660. */
  mode: number;
  /** Group id to own the socket, or null to keep ours. */
  gid: number | null;
}

/**
 * Opens a listener. A unix socket path that holds a stale socket is replaced; any other kind of
 * file there is an error (we never delete what is not ours).
 */
export async function openListener(
  address: ListenAddress,
  unix: UnixSocketOptions,
): Promise<Deno.Listener> {
  if (address.transport === "tcp") {
    return Deno.listen({ hostname: address.host, port: address.port });
  }
  try {
    const stat = await Deno.lstat(address.path);
    if (!stat.isSocket) {
      throw new Error(`${address.path} exists and is not a socket; remove it or pick another path`);
    }
    await Deno.remove(address.path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const listener = Deno.listen({ transport: "unix", path: address.path });
  await Deno.chmod(address.path, unix.mode);
  if (unix.gid !== null) await Deno.chown(address.path, null, unix.gid);
  return listener;
}

/**
 * Finds a group id by name in /etc/group text (numbers are taken as they are).
 *
 * @example
 * ```ts
 * groupId("postfix:x:110:\n", "postfix"); // 110
 * ```
 */
export function groupId(groupFile: string, name: string): number | null {
  if (/^\d+$/.test(name)) return Number(name);
  for (const line of groupFile.split("\n")) {
    const fields = line.split(":");
    if (fields[0] === name && fields.length >= 3 && /^\d+$/.test(fields[2])) {
      return Number(fields[2]);
    }
  }
  return null;
}
