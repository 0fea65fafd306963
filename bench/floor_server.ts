/**
 * The Deno floor: a tcp_table server that answers every request line with `500 NO%20RESULT`,
 * written the obvious efficient way in Deno (one read buffer per connection, the replies of one
 * read in one write, TCP_NODELAY). No Deno implementation of the router can be faster.
 *
 * With `--lookup FILE` (the bench's expected.tsv: `KEY TAB CODE` lines) it is the lookup floor
 * instead: for each request it also does the least any router must do, finding the key's domain
 * (after the last `@`, in any case) in a table of the workload's domains, then writes the reply
 * found there (a 200 or a 500 line, as expected for that domain). The table is read straight from
 * the request's bytes (see {@linkcode LookupTable}); no cache, TTL, rules, counters or log. What
 * this costs over the plain floor is the machine's price of one lookup per request, which a router
 * that finds the domain per request cannot avoid. Every 200 carries the same text, the length of the
 * router's shortest (44 bytes; its longest is 70). Like the plain floor, it takes each read to end
 * on a whole line, as the closed-loop load generator's requests do.
 *
 * ```sh
 * deno run --allow-net bench/floor_server.ts --port N
 * deno run --allow-net --allow-read bench/floor_server.ts --port N --lookup expected.tsv
 * ```
 *
 * Prints `port=N` once listening.
 *
 * @module
 */

import { parseArgs } from "node:util";

const encoder = new TextEncoder();
const NOT_FOUND = encoder.encode("500 NO%20RESULT\n");
const FOUND = encoder.encode("200 relay:[office365-relay.example.com]:587\n");

/** Replies for `lines` requests, built once per count. */
const replies: Uint8Array[] = [];

function repliesFor(lines: number): Uint8Array {
  let bytes = replies[lines];
  if (bytes === undefined) {
    bytes = new Uint8Array(NOT_FOUND.length * lines);
    for (let i = 0; i < lines; i++) bytes.set(NOT_FOUND, i * NOT_FOUND.length);
    if (lines < 1024) replies[lines] = bytes;
  }
  return bytes;
}

/**
 * Domain to reply bytes, looked up straight from a request's bytes: an FNV-1a hash of the domain
 * lower-cased, linear probing in typed arrays at most a quarter full, and a byte comparison against
 * an arena of the names. No string and no object is made per request: about as cheap as a lookup
 * gets in JavaScript.
 */
class LookupTable {
  readonly #mask: number;
  /** Per slot, the index of a domain, or -1. */
  readonly #slots: Int32Array;
  /** The lower-cased names, one after another; each domain's offset and length. */
  readonly #arena: Uint8Array;
  readonly #offsets: Int32Array;
  readonly #lengths: Int32Array;
  readonly #replies: Uint8Array[];

  /** Reads `KEY TAB CODE` lines (the bench's expected.tsv): each key's domain, replied by its code. */
  constructor(text: string) {
    const codes = new Map<string, string>();
    for (const line of text.split("\n")) {
      const tab = line.indexOf("\t");
      if (tab < 0) continue;
      const key = line.slice(0, tab);
      codes.set(key.slice(key.lastIndexOf("@") + 1).toLowerCase(), line.slice(tab + 1).trim());
    }
    const names = [...codes.keys()].map((name) => encoder.encode(name));
    let slots = 1;
    while (slots < names.length * 4) slots *= 2;
    this.#mask = slots - 1;
    this.#slots = new Int32Array(slots).fill(-1);
    this.#arena = new Uint8Array(names.reduce((size, name) => size + name.length, 0));
    this.#offsets = new Int32Array(names.length);
    this.#lengths = new Int32Array(names.length);
    this.#replies = [...codes.values()].map((code) => code === "200" ? FOUND : NOT_FOUND);
    let used = 0;
    names.forEach((name, index) => {
      this.#arena.set(name, used);
      this.#offsets[index] = used;
      this.#lengths[index] = name.length;
      used += name.length;
      let slot = hash(name, 0, name.length) & this.#mask;
      while (this.#slots[slot] >= 0) slot = (slot + 1) & this.#mask;
      this.#slots[slot] = index;
    });
  }

  /** The reply for the domain in `bytes[start, end)`, in any case; null if it is not there. */
  find(bytes: Uint8Array, start: number, end: number): Uint8Array | null {
    const length = end - start;
    const arena = this.#arena;
    for (let slot = hash(bytes, start, end) & this.#mask;; slot = (slot + 1) & this.#mask) {
      const index = this.#slots[slot];
      if (index < 0) return null;
      if (this.#lengths[index] !== length) continue;
      const at = this.#offsets[index];
      let i = 0;
      while (i < length && arena[at + i] === lower(bytes[start + i])) i++;
      if (i === length) return this.#replies[index];
    }
  }
}

function lower(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
}

function hash(bytes: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ lower(bytes[i]), 16777619);
  return h >>> 0;
}

/** The reply for the request line `buffer[start, newline)`: its domain follows the last "@". */
function replyFor(
  table: LookupTable,
  buffer: Uint8Array,
  start: number,
  newline: number,
): Uint8Array {
  // "get " and the key, which the bench sends as plain ASCII.
  let at = newline;
  while (at > start + 4 && buffer[at - 1] !== 0x40) at--;
  return table.find(buffer, at, newline) ?? NOT_FOUND;
}

/** The reply bytes for the request lines in `buffer[0, end)`: one table lookup per line. */
function lookupReplies(table: LookupTable, buffer: Uint8Array, end: number): Uint8Array {
  const first = buffer.indexOf(10);
  // The closed-loop client's case, one whole line: nothing allocated.
  if (first === end - 1) return replyFor(table, buffer, 0, first);
  const found: Uint8Array[] = [];
  let size = 0;
  for (let start = 0; start < end;) {
    const newline = buffer.indexOf(10, start);
    if (newline < 0 || newline >= end) break;
    const reply = replyFor(table, buffer, start, newline);
    found.push(reply);
    size += reply.length;
    start = newline + 1;
  }
  if (found.length === 1) return found[0];
  const out = new Uint8Array(size);
  let offset = 0;
  for (const reply of found) {
    out.set(reply, offset);
    offset += reply.length;
  }
  return out;
}

async function serve(conn: Deno.TcpConn, table: LookupTable | null): Promise<void> {
  conn.setNoDelay(true);
  const buffer = new Uint8Array(16384);
  try {
    while (true) {
      const read = await conn.read(buffer);
      if (read === null) break;
      let out: Uint8Array;
      if (table === null) {
        let lines = 0;
        for (let i = 0; i < read; i++) if (buffer[i] === 10) lines++;
        if (lines === 0) continue;
        out = repliesFor(lines);
      } else {
        out = lookupReplies(table, buffer, read);
        if (out.length === 0) continue;
      }
      for (let written = 0; written < out.length;) {
        written += await conn.write(written === 0 ? out : out.subarray(written));
      }
    }
  } catch {
    // The client went away.
  } finally {
    try {
      conn.close();
    } catch {
      // Closed already.
    }
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    strict: true,
    options: {
      port: { type: "string", default: "0" },
      lookup: { type: "string" },
    },
  });
  const table = values.lookup === undefined
    ? null
    : new LookupTable(await Deno.readTextFile(values.lookup));
  const listener = Deno.listen({ hostname: "127.0.0.1", port: Number(values.port) });
  console.log(`port=${listener.addr.port}`);
  Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
  for await (const conn of listener) serve(conn, table);
}
