/**
 * Listening addresses: `HOST:PORT` for TCP, `unix:/path` for unix sockets (replacing a stale
 * socket file at start, with the mode and group Postfix needs to connect).
 *
 * @module
 */

import { formatHostPort } from "../common/address.ts";
import { errorMessage } from "../common/errors.ts";
import { err, ok, type Result } from "../common/result.ts";

/** Where to listen. */
export type ListenAddress =
  | { transport: "tcp"; host: string; port: number }
  | { transport: "unix"; path: string };

/**
 * Parses `HOST:PORT`, `[IPv6]:PORT` or `unix:/absolute/path`.
 *
 * @example
 * ```ts
 * parseListenAddress("unix:/var/spool/postfix/private/mxroute");
 * // { ok: true, value: { transport: "unix", path: "/var/spool/postfix/private/mxroute" } }
 * parseListenAddress("127.0.0.1:10100");
 * // { ok: true, value: { transport: "tcp", host: "127.0.0.1", port: 10100 } }
 * ```
 */
export function parseListenAddress(text: string): Result<ListenAddress> {
  if (text.startsWith("unix:")) {
    const path = text.slice(5);
    if (!path.startsWith("/")) return err(`"${text}": a unix socket needs an absolute path`);
    return ok({ transport: "unix", path });
  }
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port < 1 || port > 65535) {
    return err(`"${text}": expected HOST:PORT, [IPv6]:PORT or unix:/path`);
  }
  return ok({ transport: "tcp", host: match[1] ?? match[2], port });
}

/**
 * Formats an address for logs.
 *
 * @example
 * ```ts
 * formatListenAddress({ transport: "tcp", host: "::1", port: 10099 }); // "[::1]:10099"
 * formatListenAddress({ transport: "unix", path: "/run/mx.sock" }); // "unix:/run/mx.sock"
 * ```
 */
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

/** An open listener; for a unix socket, which socket file is ours. */
export interface OpenListener {
  listener: Deno.Listener;
  /** The socket file's identity, to remove it at stop only if it is still ours; null for TCP. */
  socketFile: string | null;
}

/**
 * A file's identity: its inode and modification time, to the millisecond (an inode number alone
 * is soon reused; the change time, which our chmod moves, is read to the second only).
 */
function fileIdentity(info: Deno.FileInfo): string {
  return `${info.dev}:${info.ino}:${info.mtime?.getTime()}`;
}

/**
 * Opens a listener. A unix socket path that holds a stale socket (nobody accepts on it) is
 * replaced; a socket another process serves, or any other kind of file, is an error (we never
 * delete what is not ours).
 *
 * @example
 * ```ts
 * const path = "/var/spool/postfix/private/mxroute";
 * const { listener, socketFile } = await openListener(
 *   { transport: "unix", path },
 *   { mode: 0o660, gid: null },
 * );
 * // ... serve ...
 * listener.close();
 * if (socketFile !== null) await removeOwnSocket(path, socketFile);
 * ```
 */
export async function openListener(
  address: ListenAddress,
  unix: UnixSocketOptions,
): Promise<OpenListener> {
  if (address.transport === "tcp") {
    const listener = Deno.listen({ hostname: address.host, port: address.port });
    return { listener, socketFile: null };
  }
  const path = address.path;
  try {
    const stat = await Deno.lstat(path);
    if (!stat.isSocket) {
      throw new Error(`${path} exists and is not a socket; remove it or pick another path`);
    }
    if (await accepts(path)) {
      throw new Error(
        `${path} is in use: another process accepts connections on it; stop it or pick another path`,
      );
    }
    await Deno.remove(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const listener = Deno.listen({ transport: "unix", path });
  await Deno.chmod(path, unix.mode);
  if (unix.gid !== null) await Deno.chown(path, null, unix.gid);
  return { listener, socketFile: fileIdentity(await Deno.lstat(path)) };
}

/**
 * Whether a process accepts connections on the unix socket at `path`. Only a refused connection
 * (a socket left by a process that is gone) or a vanished file says no; anything else (a full
 * backlog, no permission) cannot tell, and is an error rather than a guess that deletes a live
 * socket.
 */
async function accepts(path: string): Promise<boolean> {
  try {
    (await Deno.connect({ transport: "unix", path })).close();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionRefused || error instanceof Deno.errors.NotFound) {
      return false;
    }
    throw new Error(`cannot tell whether ${path} is in use: ${errorMessage(error)}`);
  }
}

/**
 * Removes the unix socket we made at `path`, unless the file there is no longer ours (another
 * instance replaced it since): that one's clients must keep reaching it.
 *
 * @example
 * ```ts
 * declare const socketFile: string; // from openListener
 * await removeOwnSocket("/var/spool/postfix/private/mxroute", socketFile);
 * ```
 */
export async function removeOwnSocket(path: string, socketFile: string): Promise<void> {
  try {
    if (fileIdentity(await Deno.lstat(path)) === socketFile) await Deno.remove(path);
  } catch {
    // Gone already.
  }
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
