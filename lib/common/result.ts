/**
 * The one shape of "a value, or why there is none" across the router: `ok` says which, `value`
 * holds what was asked for and `error` what went wrong. The error is a message where a message
 * is all a caller needs, and a list or a small object where it needs more (every line of a rules
 * file at fault; the line of a damaged cache file).
 *
 * @example
 * ```ts
 * import { err, ok, type Result } from "./result.ts";
 *
 * function parsePort(text: string): Result<number> {
 *   const port = Number(text);
 *   return Number.isInteger(port) && port > 0 && port < 65536 ? ok(port) : err("not a port");
 * }
 * const parsed = parsePort("25");
 * if (parsed.ok) console.log(parsed.value + 1);
 * else console.error(parsed.error);
 * ```
 *
 * @module
 */

/** A value: the successful side of a {@linkcode Result}. */
export type Ok<T> = { ok: true; value: T };

/** Why there is no value: the failed side of a {@linkcode Result}. */
export type Err<E> = { ok: false; error: E };

/**
 * A value, or why there is none; the error is a message unless said otherwise.
 *
 * @example
 * ```ts
 * import type { Result } from "./result.ts";
 *
 * declare const read: Result<string[], { line: number; message: string }>;
 * const lines = read.ok ? read.value : [`line ${read.error.line}: ${read.error.message}`];
 * ```
 */
export type Result<T, E = string> = Ok<T> | Err<E>;

/**
 * The successful result holding `value`.
 *
 * @example
 * ```ts
 * import { ok, type Result } from "./result.ts";
 *
 * const answer: Result<number> = ok(42); // { ok: true, value: 42 }
 * ```
 */
export function ok<T>(value: T): Ok<T> {
  return { ok: true, value };
}

/**
 * The failed result holding `error`.
 *
 * @example
 * ```ts
 * import { err, type Result } from "./result.ts";
 *
 * const answer: Result<number> = err("not a number"); // { ok: false, error: "not a number" }
 * ```
 */
export function err<E>(error: E): Err<E> {
  return { ok: false, error };
}
