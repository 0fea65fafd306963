/**
 * Postfix tcp_table(5) wire format: `get KEY\n` requests and `CODE TEXT\n` replies, both with
 * `%XX` encoding of `%`, whitespace and non-printing characters.
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

/** Longest request line we read, newline included; Postfix's own reply limit is 4096 too. */
export const MAX_TCP_TABLE_LINE = 4096;

/** The longest encoded text a reply line holds: the line less the code, its space and newline. */
export const MAX_TCP_TABLE_TEXT = MAX_TCP_TABLE_LINE - 5;

const HEX = "0123456789ABCDEF";
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Bytes (or UTF-16 units) sent as %XX: controls, space, non-ASCII and "%" itself. */
function needsEscape(c: number): boolean {
  return c <= 0x20 || c >= 0x7f || c === 0x25;
}

/**
 * Encodes text for a tcp_table request or reply: `%`, whitespace, controls and every non-ASCII
 * byte of the UTF-8 form become `%XX`.
 *
 * @example
 * ```ts
 * encodeTcpTable("smtp:[a]:25, [b]:25"); // "smtp:[a]:25,%20[b]:25"
 * ```
 */
export function encodeTcpTable(text: string): string {
  let plain = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (needsEscape(c)) {
      plain = false;
      break;
    }
  }
  if (plain) return text;
  let out = "";
  for (const byte of utf8.encode(text)) {
    if (needsEscape(byte)) {
      out += "%" + HEX[byte >> 4] + HEX[byte & 15];
    } else {
      out += String.fromCharCode(byte);
    }
  }
  return out;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/**
 * Decodes `%XX` escapes (hex in any case) and checks that the bytes are UTF-8.
 *
 * Returns null for a bad escape (`%ZZ`, a trailing `%`) or bytes that are not UTF-8, so the
 * caller can answer with a protocol error instead of guessing.
 *
 * @example
 * ```ts
 * decodeTcpTable("user@m%C3%BCller.example"); // "user@müller.example"
 * ```
 */
export function decodeTcpTable(text: string): string | null {
  if (!text.includes("%")) return text;
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x25) {
      const high = i + 2 < text.length ? hexValue(text.charCodeAt(i + 1)) : -1;
      const low = high >= 0 ? hexValue(text.charCodeAt(i + 2)) : -1;
      if (low < 0) return null;
      bytes.push(high * 16 + low);
      i += 2;
    } else if (c < 0x80) {
      bytes.push(c);
    } else {
      for (const byte of utf8.encode(text[i])) bytes.push(byte);
    }
  }
  try {
    return strictUtf8.decode(new Uint8Array(bytes));
  } catch {
    return null;
  }
}

/** A parsed tcp_table request line: a key to look up, or a protocol error to answer. */
export type TcpTableRequest =
  | { kind: "get"; key: string }
  | { kind: "bad"; reason: string };

/**
 * Parses one request line (without its newline; a trailing CR is ignored).
 *
 * @example
 * ```ts
 * parseTcpTableRequest("get user@example.com"); // { kind: "get", key: "user@example.com" }
 * ```
 */
export function parseTcpTableRequest(line: string): TcpTableRequest {
  if (line.endsWith("\r")) line = line.slice(0, -1);
  const space = line.indexOf(" ");
  const verb = space < 0 ? line : line.slice(0, space);
  if (verb.toLowerCase() !== "get") {
    return { kind: "bad", reason: `unknown command "${printable(verb)}": expected "get KEY"` };
  }
  if (space < 0) return { kind: "bad", reason: 'missing key: expected "get KEY"' };
  const key = decodeTcpTable(line.slice(space + 1));
  if (key === null) return { kind: "bad", reason: "bad %-encoding or non-UTF-8 key" };
  return { kind: "get", key };
}

/** Shortens and cleans untrusted text for use inside an error message. */
function printable(text: string): string {
  const max = 40;
  // deno-lint-ignore no-control-regex
  const clean = text.replace(/[\x00-\x1f\x7f-\uffff]/g, "?");
  return clean.length > max ? clean.slice(0, max) + "..." : clean;
}

/** Reply codes of tcp_table(5). */
export type TcpTableCode = 200 | 400 | 500;

/**
 * The tcp_table reply code of a decision: 200 for a result, 400 for a temporary failure, 500
 * for "not found". Logs and `query` describe answers by this code too.
 *
 * @example
 * ```ts
 * import type { Decision } from "../routing/router.ts";
 * const decision = { label: "tempfail" } as Decision;
 * tcpTableCode(decision); // 400
 * ```
 */
export function tcpTableCode(decision: Decision): TcpTableCode {
  return decision.label === "match" ? 200 : decision.label === "tempfail" ? 400 : 500;
}

/**
 * Formats one reply line, newline included, encoded and cut to Postfix's 4096-byte limit.
 *
 * @example
 * ```ts
 * tcpTableReply(500, "NO RESULT"); // "500 NO%20RESULT\n"
 * ```
 */
export function tcpTableReply(code: TcpTableCode, text: string): string {
  let encoded = encodeTcpTable(text);
  if (encoded.length > MAX_TCP_TABLE_TEXT) {
    // Never cut inside an escape: back off to the last complete one.
    let cut = MAX_TCP_TABLE_TEXT;
    const percent = encoded.lastIndexOf("%", cut);
    if (percent > cut - 3) cut = percent;
    encoded = encoded.slice(0, cut);
  }
  return `${code} ${encoded}\n`;
}

const NOT_FOUND = utf8.encode("500 NO%20RESULT\n");

function badFrame(out: Frame, next: number, reason: string, close: boolean): FrameStatus {
  out.next = next;
  out.reply = utf8.encode(tcpTableReply(400, reason));
  out.close = close;
  return FRAME_BAD;
}

/** Keys up to this long take the fast path below; longer ones the general parser. */
const FAST_KEY_MAX = 512;

/**
 * The common request, `get ` and a key of printable ASCII without `%` (what Postfix sends for
 * most addresses), read straight from the bytes; null sends the line to the general parser.
 */
function plainGetKey(buffer: Uint8Array, start: number, end: number): string | null {
  if (buffer[end - 1] === 13) end--; // CRLF
  const length = end - start - 4;
  if (
    length < 1 || length > FAST_KEY_MAX || buffer[start] !== 0x67 || buffer[start + 1] !== 0x65 ||
    buffer[start + 2] !== 0x74 || buffer[start + 3] !== 0x20
  ) {
    return null;
  }
  for (let i = start + 4; i < end; i++) {
    const c = buffer[i];
    if (needsEscape(c)) return null;
  }
  return String.fromCharCode.apply(null, buffer.subarray(start + 4, end) as unknown as number[]);
}

/**
 * The tcp_table protocol for the server: newline-framed `get` requests, one reply line each.
 * A line over {@linkcode MAX_TCP_TABLE_LINE} bytes gets a 400 and closes the connection.
 */
export const tcpTableCodec: ProtocolCodec = {
  name: "tcp_table",
  maxFrame: MAX_TCP_TABLE_LINE,
  frame(buffer: Uint8Array, start: number, end: number, out: Frame): FrameStatus {
    const newline = buffer.indexOf(10, start);
    if (newline < 0 || newline >= end) {
      if (end - start >= MAX_TCP_TABLE_LINE) {
        return badFrame(out, end, `request longer than ${MAX_TCP_TABLE_LINE} bytes`, true);
      }
      return FRAME_NEED_MORE;
    }
    if (newline + 1 - start > MAX_TCP_TABLE_LINE) {
      return badFrame(out, newline + 1, `request longer than ${MAX_TCP_TABLE_LINE} bytes`, true);
    }
    const key = plainGetKey(buffer, start, newline);
    if (key !== null) {
      out.key = key;
      out.next = newline + 1;
      return FRAME_REQUEST;
    }
    let line: string;
    try {
      line = strictUtf8.decode(buffer.subarray(start, newline));
    } catch {
      return badFrame(out, newline + 1, "request is not UTF-8 text", false);
    }
    const request = parseTcpTableRequest(line);
    if (request.kind === "bad") return badFrame(out, newline + 1, request.reason, false);
    out.key = request.key;
    out.next = newline + 1;
    return FRAME_REQUEST;
  },
  encode(decision: Decision): Uint8Array {
    const code = tcpTableCode(decision);
    if (code === 500) return NOT_FOUND;
    return utf8.encode(tcpTableReply(code, code === 200 ? decision.result ?? "" : decision.reason));
  },
};
