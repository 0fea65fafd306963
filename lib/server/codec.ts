/**
 * The small interface through which the server speaks either protocol (tcp_table, socketmap):
 * framing of requests and encoding of replies, as pure functions over bytes.
 *
 * @module
 */

import type { Decision } from "../routing/router.ts";

/** `frame` found no complete request yet: read more. */
export const FRAME_NEED_MORE = 0;
/** `frame` found a request: its key is in `Frame.key`. */
export const FRAME_REQUEST = 1;
/** `frame` found a bad request: send `Frame.reply`, then close if `Frame.close`. */
export const FRAME_BAD = 2;

/** What `frame` found. */
export type FrameStatus = typeof FRAME_NEED_MORE | typeof FRAME_REQUEST | typeof FRAME_BAD;

/** Filled in by `frame`; one object per connection, reused, so framing allocates nothing. */
export interface Frame {
  /** The decoded lookup key (FRAME_REQUEST). */
  key: string;
  /** Offset just past the frame (FRAME_REQUEST, FRAME_BAD). */
  next: number;
  /** The protocol error reply (FRAME_BAD). */
  reply: Uint8Array;
  /** Close the connection after the reply (FRAME_BAD): the stream can no longer be framed. */
  close: boolean;
}

/** One wire protocol. */
export interface ProtocolCodec {
  /** Protocol name, for logs and metrics. */
  readonly name: "tcp_table" | "socketmap";
  /** The most bytes one request may take, framing included. */
  readonly maxFrame: number;
  /** Looks for the next request in `buffer[start, end)`. */
  frame(buffer: Uint8Array, start: number, end: number, out: Frame): FrameStatus;
  /** Encodes the reply bytes of a decision (the server keeps a match's in a {@linkcode ReplyCache}). */
  encode(decision: Decision): Uint8Array;
}

/**
 * Creates an empty frame to pass to `ProtocolCodec.frame`.
 *
 * @example
 * ```ts
 * import { tcpTableCodec } from "./tcp_table.ts";
 *
 * const request = new TextEncoder().encode("get user@contoso.com\n");
 * const frame = newFrame();
 * tcpTableCodec.frame(request, 0, request.length, frame);
 * frame.key; // "user@contoso.com"
 * ```
 */
export function newFrame(): Frame {
  return { key: "", next: 0, reply: new Uint8Array(0), close: false };
}

/**
 * The most results a {@linkcode ReplyCache} keeps. Results come from the rules file (rules and
 * pool members), so a few reloads stay far below it; past it the cache starts over.
 */
const MAX_CACHED_REPLIES = 4096;

/**
 * A protocol's encoded replies for matches, kept per result, so that a hit encodes nothing and
 * a hundred thousand cached domains share the bytes of their rule's reply. "Not found" replies
 * are constants of the codec; a temporary failure's depends on its reason and is encoded anew.
 *
 * @example
 * ```ts
 * import { tcpTableCodec } from "./tcp_table.ts";
 * import type { Decision } from "../routing/router.ts";
 *
 * declare const conn: Deno.Conn;
 * declare const decision: Decision;
 * const replies = new ReplyCache(tcpTableCodec);
 * await conn.write(replies.bytes(decision));
 * ```
 */
export class ReplyCache {
  readonly #codec: ProtocolCodec;
  readonly #byResult = new Map<string, Uint8Array>();

  constructor(codec: ProtocolCodec) {
    this.#codec = codec;
  }

  /** The reply bytes of a decision. */
  bytes(decision: Decision): Uint8Array {
    if (decision.label !== "match" || decision.result === null) return this.#codec.encode(decision);
    let bytes = this.#byResult.get(decision.result);
    if (bytes === undefined) {
      if (this.#byResult.size >= MAX_CACHED_REPLIES) this.#byResult.clear();
      bytes = this.#codec.encode(decision);
      this.#byResult.set(decision.result, bytes);
    }
    return bytes;
  }
}
