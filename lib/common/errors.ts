/**
 * Small helpers for the ways things fail: one readable line from any thrown value, and closing
 * what may already be closed.
 *
 * @module
 */

/**
 * The message of an error, or the thrown value as text.
 *
 * @example
 * ```ts
 * errorMessage(new Error("boom")); // "boom"
 * ```
 */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Closes a connection, listener or socket, ignoring that it may be closed already.
 *
 * @example
 * ```ts
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * listener.close();
 * closeQuietly(listener); // already closed: nothing happens
 * ```
 */
export function closeQuietly(closable: { close(): void } | undefined): void {
  try {
    closable?.close();
  } catch {
    // Already closed: nothing to do.
  }
}

/**
 * Why a file could not be read or written, for a person: "no such file", "permission denied",
 * "is a directory", or, for a path outside the permissions built into the binary, that and
 * `outside` (where to put the file instead).
 *
 * @example
 * ```ts
 * describeFileError(new Deno.errors.NotFound("x"), "put it under /etc/postfix"); // "no such file"
 * ```
 */
export function describeFileError(error: unknown, outside: string): string {
  if (error instanceof Deno.errors.NotFound) return "no such file";
  if (error instanceof Deno.errors.NotCapable) {
    return `outside the paths the router may use, which are built into the binary: ${outside}`;
  }
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.IsADirectory) return "is a directory";
  return errorMessage(error);
}

/**
 * A count with its noun, singular or plural.
 *
 * @example
 * ```ts
 * plural(1, "rule"); // "1 rule"
 * plural(2, "rule"); // "2 rules"
 * ```
 */
export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}
