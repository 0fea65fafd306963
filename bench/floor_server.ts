/**
 * The Deno floor: a tcp_table server that answers every request line with `500 NO%20RESULT`,
 * written the obvious efficient way in Deno (one read buffer per connection, the replies of one
 * read in one write, TCP_NODELAY). No Deno implementation of the router can be faster.
 *
 * With `--lookup FILE` (the bench's expected.tsv: `KEY TAB CODE` lines) it is the lookup floor
 * instead: for each request it also does the least any router must do, taking the key's domain
 * (after the last `@`, lower-cased) and finding it in a table of the workload's domains, then
 * writes the reply found there (a 200 or a 500 line, as expected for that domain). No cache, TTL,
 * rules, counters or log: what this costs over the plain floor is the machine's price of one
 * string-keyed lookup per request, which no router can avoid. Like the plain floor, it takes each
 * read to end on a whole line, as the closed-loop load generator's requests do.
 *
 * ```sh
 * deno run --allow-net bench/floor_server.ts --port N
 * deno run --allow-net --allow-read bench/floor_server.ts --port N --lookup expected.tsv
 * deno run --allow-net --unstable-net bench/floor_server.ts --port N --reuse-port   # SO_REUSEPORT
 * ```
 *
 * Prints `port=N` once listening.
 *
 * @module
 */

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

/** Domain to reply bytes, from `KEY TAB CODE` lines. */
function lookupTable(text: string): Map<string, Uint8Array> {
  const table = new Map<string, Uint8Array>();
  for (const line of text.split("\n")) {
    const tab = line.indexOf("\t");
    if (tab < 0) continue;
    const key = line.slice(0, tab);
    table.set(
      key.slice(key.lastIndexOf("@") + 1).toLowerCase(),
      line.endsWith("200") ? FOUND : NOT_FOUND,
    );
  }
  return table;
}

/** The reply bytes for the request lines in `buffer[0, end)`: one table lookup per line. */
function lookupReplies(
  table: Map<string, Uint8Array>,
  buffer: Uint8Array,
  end: number,
): Uint8Array {
  const found: Uint8Array[] = [];
  let size = 0;
  for (let start = 0; start < end;) {
    const newline = buffer.indexOf(10, start);
    if (newline < 0 || newline >= end) break;
    // "get " and the key, which the bench sends as plain ASCII.
    const key = String.fromCharCode.apply(
      null,
      buffer.subarray(start + 4, newline) as unknown as number[],
    );
    const reply = table.get(key.slice(key.lastIndexOf("@") + 1).toLowerCase()) ?? NOT_FOUND;
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

async function serve(conn: Deno.TcpConn, table: Map<string, Uint8Array> | null): Promise<void> {
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
  const value = (flag: string) => {
    const index = Deno.args.indexOf(flag);
    return index >= 0 ? Deno.args[index + 1] : undefined;
  };
  const port = Number(value("--port") ?? 0);
  const lookupPath = value("--lookup");
  const table = lookupPath === undefined ? null : lookupTable(await Deno.readTextFile(lookupPath));
  // SO_REUSEPORT lets several processes share the port (the multi-core experiment); Deno 2.9
  // still requires --unstable-net for it.
  const reusePort = Deno.args.includes("--reuse-port");
  const listener = Deno.listen({
    hostname: "127.0.0.1",
    port,
    ...(reusePort ? { reusePort } : {}),
  });
  console.log(`port=${listener.addr.port}`);
  Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
  for await (const conn of listener) serve(conn, table);
}
