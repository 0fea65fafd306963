/**
 * Postfix socketmap_table(5): netstring requests `NAME KEY` and netstring replies `OK data`,
 * `NOTFOUND `, `TEMP reason`, `PERM reason`.
 *
 * @module
 */

import {
  type Frame,
  FRAME_BAD,
  FRAME_NEED_MORE,
  FRAME_REQUEST,
  type FrameStatus,
  type ProtocolCodec,
} from "./codec.ts";
import type { Decision } from "../routing/router.ts";
import { MAX_TCP_TABLE_LINE } from "./tcp_table.ts";

/** Longest netstring payload sent, as socketmap_table(5) allows. */
export const MAX_NETSTRING = 100_000;
/**
 * Longest request payload accepted ("NAME KEY"): the bound of a tcp_table request line. Keys are
 * addresses; a 100,000-byte buffer kept for each of thousands of connections is not.
 */
export const MAX_SOCKETMAP_REQUEST = MAX_TCP_TABLE_LINE;

const encoder = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const COLON = 0x3a;
const COMMA = 0x2c;

/**
 * Wraps text in a netstring, `LEN:DATA,` (LEN counts UTF-8 bytes), cut to
 * {@linkcode MAX_NETSTRING} bytes.
 *
 * @example
 * ```ts
 * encodeNetstring("NOTFOUND "); // "9:NOTFOUND ,"
 * ```
 */
export function encodeNetstring(text: string): Uint8Array {
  let data = encoder.encode(text);
  if (data.length > MAX_NETSTRING) data = data.subarray(0, MAX_NETSTRING);
  const head = encoder.encode(`${data.length}:`);
  const out = new Uint8Array(head.length + data.length + 1);
  out.set(head);
  out.set(data, head.length);
  out[out.length - 1] = COMMA;
  return out;
}

/** One netstring found in a buffer, or why none can be. */
export type NetstringScan =
  | { kind: "need-more" }
  | { kind: "ok"; data: Uint8Array; next: number }
  | { kind: "bad"; reason: string };

/**
 * Looks for one netstring at `buffer[start, end)`. A bad length, a length over `max` or a missing
 * trailing comma is `bad`: the stream cannot be framed any further.
 *
 * @example
 * ```ts
 * scanNetstring(new TextEncoder().encode("3:abc,"), 0, 6); // { kind: "ok", data: "abc", next: 6 }
 * ```
 */
export function scanNetstring(
  buffer: Uint8Array,
  start: number,
  end: number,
  max: number = MAX_NETSTRING,
): NetstringScan {
  let length = 0;
  let index = start;
  for (; index < end; index++) {
    const c = buffer[index];
    if (c === COLON) break;
    // A digit after a leading zero is refused: zeros would let a length field grow without
    // bound while its value stays 0.
    if (c < 0x30 || c > 0x39 || (index > start && buffer[start] === 0x30)) {
      return { kind: "bad", reason: "malformed netstring length" };
    }
    length = length * 10 + (c - 0x30);
    if (length > max) return { kind: "bad", reason: `netstring longer than ${max} bytes` };
  }
  if (index === end) return { kind: "need-more" };
  if (index === start) {
    return { kind: "bad", reason: "malformed netstring length" };
  }
  const dataStart = index + 1;
  const comma = dataStart + length;
  if (comma >= end) return { kind: "need-more" };
  if (buffer[comma] !== COMMA) return { kind: "bad", reason: "netstring without trailing comma" };
  return { kind: "ok", data: buffer.subarray(dataStart, comma), next: comma + 1 };
}

function perm(out: Frame, next: number, reason: string, close: boolean): FrameStatus {
  out.next = next;
  out.reply = encodeNetstring(`PERM ${reason}`);
  out.close = close;
  return FRAME_BAD;
}

const NOT_FOUND = encodeNetstring("NOTFOUND ");

/**
 * The socketmap protocol for the server. Any map name is accepted (document `mxroute`); the key
 * is everything after the first space.
 */
export const socketmapCodec: ProtocolCodec = {
  name: "socketmap",
  // The longest netstring: its length digits, the colon, the payload and the comma.
  maxFrame: String(MAX_SOCKETMAP_REQUEST).length + 1 + MAX_SOCKETMAP_REQUEST + 1,
  frame(buffer: Uint8Array, start: number, end: number, out: Frame): FrameStatus {
    const scan = scanNetstring(buffer, start, end, MAX_SOCKETMAP_REQUEST);
    if (scan.kind === "need-more") return FRAME_NEED_MORE;
    if (scan.kind === "bad") return perm(out, end, scan.reason, true);
    let request: string;
    try {
      request = strictUtf8.decode(scan.data);
    } catch {
      return perm(out, scan.next, "request is not UTF-8", false);
    }
    const space = request.indexOf(" ");
    if (space <= 0 || space === request.length - 1) {
      return perm(out, scan.next, 'malformed request: expected "NAME KEY"', false);
    }
    out.key = request.slice(space + 1);
    out.next = scan.next;
    return FRAME_REQUEST;
  },
  encode(decision: Decision): Uint8Array {
    switch (decision.label) {
      case "match":
        return encodeNetstring(`OK ${decision.result}`);
      case "tempfail":
        return encodeNetstring(`TEMP ${decision.reason}`);
      default:
        return NOT_FOUND;
    }
  },
};
