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
