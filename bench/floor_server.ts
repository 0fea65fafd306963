/**
 * The Deno floor: a tcp_table server that answers every request line with `500 NO%20RESULT`,
 * written the obvious efficient way in Deno (one read buffer per connection, the replies of one
 * read in one write, TCP_NODELAY). No Deno implementation of the router can be faster.
 *
 * ```sh
 * deno run --allow-net bench/floor_server.ts --port N
 * deno run --allow-net --unstable-net bench/floor_server.ts --port N --reuse-port   # SO_REUSEPORT
 * ```
 *
 * Prints `port=N` once listening.
 *
 * @module
 */

const REPLY = new TextEncoder().encode("500 NO%20RESULT\n");

/** Replies for `lines` requests, built once per count. */
const replies: Uint8Array[] = [];

function repliesFor(lines: number): Uint8Array {
  let bytes = replies[lines];
  if (bytes === undefined) {
    bytes = new Uint8Array(REPLY.length * lines);
    for (let i = 0; i < lines; i++) bytes.set(REPLY, i * REPLY.length);
    if (lines < 1024) replies[lines] = bytes;
  }
  return bytes;
}

async function serve(conn: Deno.TcpConn): Promise<void> {
  conn.setNoDelay(true);
  const buffer = new Uint8Array(16384);
  try {
    while (true) {
      const read = await conn.read(buffer);
      if (read === null) break;
      let lines = 0;
      for (let i = 0; i < read; i++) if (buffer[i] === 10) lines++;
      if (lines === 0) continue;
      const out = repliesFor(lines);
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
  const index = Deno.args.indexOf("--port");
  const port = index >= 0 ? Number(Deno.args[index + 1]) : 0;
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
  for await (const conn of listener) serve(conn);
}
