/**
 * A closed-loop tcp_table load generator shaped like Postfix, in Deno: the stand-in for
 * bench/loadgen.c where no C compiler builds it, with the same arguments and output line; and the
 * line reader the soak and the bench's own lookups use.
 *
 * ```sh
 * deno run --allow-net --allow-read bench/loadgen.ts HOST PORT CONNS KEYFILE SECONDS
 * ```
 *
 * Each of CONNS connections sends `get KEY\n`, waits for the reply line, and sends the next.
 * SECONDS=0 makes one pass, every key once, shared between the connections.
 *
 * @module
 */

/** What one run measured; the fields of the output line. */
export interface LoadResult {
  conns: number;
  lookups: number;
  secs: number;
  rate: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
  codes: { 200: number; 400: number; 500: number; other: number };
  errors: number;
}

/**
 * Parses the output line of bench/loadgen.c (and of this program).
 *
 * @example
 * ```ts
 * parseLoadLine("conns=1 lookups=10 secs=1.00 rate=10/s p50=5us p99=9us max=9us 200=10 400=0 500=0 other=0 errors=0");
 * ```
 */
export function parseLoadLine(text: string): LoadResult {
  const line = text.split("\n").find((l) => l.startsWith("conns="));
  if (line === undefined) throw new Error(`no result line in load generator output: ${text}`);
  const field = (name: string) => {
    const match = new RegExp(`(?:^| )${name}=([0-9.]+)`).exec(line);
    if (match === null) throw new Error(`no ${name}= in "${line}"`);
    return Number(match[1]);
  };
  return {
    conns: field("conns"),
    lookups: field("lookups"),
    secs: field("secs"),
    rate: field("rate"),
    p50Us: field("p50"),
    p99Us: field("p99"),
    maxUs: field("max"),
    codes: { 200: field("200"), 400: field("400"), 500: field("500"), other: field("other") },
    errors: field("errors"),
  };
}

/** Formats a result as loadgen.c prints it. */
export function formatLoadLine(r: LoadResult): string {
  return `conns=${r.conns} lookups=${r.lookups} secs=${r.secs.toFixed(2)} rate=${
    r.rate.toFixed(0)
  }/s p50=${r.p50Us.toFixed(0)}us p99=${r.p99Us.toFixed(0)}us max=${r.maxUs.toFixed(0)}us 200=${
    r.codes[200]
  } 400=${r.codes[400]} 500=${r.codes[500]} other=${r.codes.other} errors=${r.errors}`;
}

/** Reads reply lines from a connection, one at a time, with one buffer. */
export class LineReader {
  readonly #conn: Deno.Conn;
  #buffer = new Uint8Array(8192);
  #start = 0;
  #end = 0;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** The reply code of the next line (see {@linkcode replyCode}), or null at EOF. */
  async nextCode(): Promise<number | null> {
    const line = await this.nextLine();
    return line === null ? null : replyCode(line);
  }

  /** The next line without its newline (a view valid until the next call), or null at EOF. */
  async nextLine(): Promise<Uint8Array | null> {
    for (;;) {
      const newline = this.#buffer.subarray(this.#start, this.#end).indexOf(10);
      if (newline >= 0) {
        const line = this.#buffer.subarray(this.#start, this.#start + newline);
        this.#start += newline + 1;
        if (this.#start === this.#end) this.#start = this.#end = 0;
        return line;
      }
      if (this.#start > 0) {
        this.#buffer.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      }
      if (this.#end === this.#buffer.length) {
        const grown = new Uint8Array(this.#buffer.length * 2);
        grown.set(this.#buffer);
        this.#buffer = grown;
      }
      const read = await this.#conn.read(this.#buffer.subarray(this.#end));
      if (read === null) return null;
      this.#end += read;
    }
  }
}

/** The first three bytes of a reply line as a reply code; 0 if they are not one. */
export function replyCode(line: Uint8Array): number {
  const code = (line[0] - 48) * 100 + (line[1] - 48) * 10 + (line[2] - 48);
  return line.length >= 3 && code >= 100 && code <= 999 ? code : 0;
}

/** Latencies in microseconds, kept unboxed in a Float64Array that grows as needed. */
export class Samples {
  #data = new Float64Array(1 << 16);
  #length = 0;

  /** Adds one sample. */
  push(value: number): void {
    if (this.#length === this.#data.length) {
      const grown = new Float64Array(this.#length * 2);
      grown.set(this.#data);
      this.#data = grown;
    }
    this.#data[this.#length++] = value;
  }

  /** The samples so far (a view, valid until the next push). */
  values(): Float64Array {
    return this.#data.subarray(0, this.#length);
  }
}

/** Writes all bytes. */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.length;) {
    written += await conn.write(bytes.subarray(written));
  }
}

/** Percentile as loadgen.c takes it: the element at floor(n * q) of the sorted samples. */
export function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))];
}

/** Options of {@linkcode runLoad}. */
export interface RunLoadOptions {
  host: string;
  port: number;
  conns: number;
  keys: string[];
  /** Run this long; 0: one pass over the keys. */
  seconds: number;
}

/** Runs the closed loop and measures it. */
export async function runLoad(options: RunLoadOptions): Promise<LoadResult> {
  const { keys, conns } = options;
  const once = options.seconds <= 0;
  const encoder = new TextEncoder();
  const requests = keys.map((key) => encoder.encode(`get ${key}\n`));
  let nextKey = 0;
  let stop = false;
  const codes = { 200: 0, 400: 0, 500: 0, other: 0 };
  let errors = 0;
  const samples: Float64Array[] = [];
  const started = performance.now();
  const worker = async (id: number) => {
    const latencies = new Samples();
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname: options.host, port: options.port });
    } catch {
      errors++;
      return;
    }
    conn.setNoDelay(true);
    const reader = new LineReader(conn);
    let i = id * 7919;
    try {
      while (!stop) {
        let request: Uint8Array;
        if (once) {
          const j = nextKey++;
          if (j >= requests.length) break;
          request = requests[j];
        } else {
          request = requests[i++ % requests.length];
        }
        const t0 = performance.now();
        await writeAll(conn, request);
        const code = await reader.nextCode();
        if (code === null) {
          errors++;
          break;
        }
        if (code === 200 || code === 400 || code === 500) codes[code]++;
        else codes.other++;
        latencies.push((performance.now() - t0) * 1000);
      }
    } catch {
      errors++;
    } finally {
      conn.close();
    }
    samples.push(latencies.values());
  };
  const workers = Array.from({ length: conns }, (_, id) => worker(id));
  let timer: ReturnType<typeof setTimeout> | undefined;
  if (!once) timer = setTimeout(() => stop = true, options.seconds * 1000);
  await Promise.all(workers);
  clearTimeout(timer);
  const secs = (performance.now() - started) / 1000;
  const lookups = samples.reduce((sum, s) => sum + s.length, 0);
  const all = new Float64Array(lookups);
  let offset = 0;
  for (const s of samples) {
    all.set(s, offset);
    offset += s.length;
  }
  all.sort();
  return {
    conns,
    lookups,
    secs,
    rate: lookups / secs,
    p50Us: percentile(all, 0.5),
    p99Us: percentile(all, 0.99),
    maxUs: all.length > 0 ? all[all.length - 1] : 0,
    codes,
    errors,
  };
}

if (import.meta.main) {
  const [host, port, conns, keyFile, seconds] = Deno.args;
  if (seconds === undefined) {
    console.error("usage: loadgen.ts HOST PORT CONNS KEYFILE SECONDS");
    Deno.exit(2);
  }
  const keys = (await Deno.readTextFile(keyFile)).split("\n").filter((k) => k !== "");
  const result = await runLoad({
    host,
    port: Number(port),
    conns: Number(conns),
    keys,
    seconds: Number(seconds),
  });
  console.log(formatLoadLine(result));
}
