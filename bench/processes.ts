/**
 * The benchmark's processes: the DNS server, the router, the floor servers and the load
 * generators, each a child process on loopback, plus RSS and metrics readings.
 *
 * @module
 */

import { freePort, WaitAborted, waitFor } from "../tests/support/e2e_util.ts";
import { errorMessage } from "../lib/common/errors.ts";
import {
  compilePermissionFlags,
  PROJECT_ROOT,
  withExtraPaths,
} from "../tests/support/router_process.ts";
import { LineReader, type LoadResult, parseLoadLine, writeAll } from "./loadgen.ts";

/** The only host the benchmark talks to. */
export const HOST = "127.0.0.1";

const BENCH_DIR = `${PROJECT_ROOT}/bench`;

/** Lines of a child's stdout, read in the background and handed out in order. */
class StdoutLines {
  #lines: string[] = [];
  #waiters: ((line: string | null) => void)[] = [];
  #ended = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#pump(stream);
  }

  async #pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let pending = "";
    for await (const chunk of stream) {
      pending += decoder.decode(chunk, { stream: true });
      let newline;
      while ((newline = pending.indexOf("\n")) >= 0) {
        this.#push(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
      }
    }
    this.#ended = true;
    for (const waiter of this.#waiters.splice(0)) waiter(null);
  }

  #push(line: string): void {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter(line);
    else this.#lines.push(line);
  }

  /** The next line, or null once the stream ended; throws after `timeoutMs`. */
  next(timeoutMs = 30_000): Promise<string | null> {
    const line = this.#lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.#ended) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`no output line within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (value: string | null) => {
        clearTimeout(timer);
        resolve(value);
      };
      this.#waiters.push(waiter);
    });
  }
}

/** Stops a child: SIGTERM, then SIGKILL after `graceMs`. */
async function stopChild(child: Deno.ChildProcess, graceMs = 5000): Promise<void> {
  try {
    child.kill("SIGTERM");
  } catch {
    // Exited already.
  }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Exited meanwhile.
    }
  }, graceMs);
  await child.status;
  clearTimeout(timer);
}

/** The DNS server process (bench/dns_server.ts), controllable through its standard input. */
export class DnsProcess {
  readonly port: number;
  readonly pid: number;
  readonly #child: Deno.ChildProcess;
  readonly #lines: StdoutLines;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;

  private constructor(
    child: Deno.ChildProcess,
    lines: StdoutLines,
    stdin: WritableStreamDefaultWriter<Uint8Array>,
    port: number,
  ) {
    this.#child = child;
    this.#lines = lines;
    this.#stdin = stdin;
    this.port = port;
    this.pid = child.pid;
  }

  /** Starts the server on a free port with a zone file. */
  static async start(zonePath: string): Promise<DnsProcess> {
    const port = await freePort({ udp: true });
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net",
        "--allow-read",
        `${BENCH_DIR}/dns_server.ts`,
        "--zone-file",
        zonePath,
        "--port",
        String(port),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
      env: { NO_COLOR: "1" },
    }).spawn();
    const lines = new StdoutLines(child.stdout);
    const first = await lines.next(60_000);
    if (first !== `port=${port}`) throw new Error(`DNS server did not start: ${first}`);
    return new DnsProcess(child, lines, child.stdin.getWriter(), port);
  }

  async #command(command: string): Promise<string> {
    await this.#stdin.write(new TextEncoder().encode(command + "\n"));
    const answer = await this.#lines.next();
    if (answer === null || answer.startsWith("error")) {
      throw new Error(`DNS server: "${command}" failed: ${answer}`);
    }
    return answer;
  }

  /** Closes its sockets: every query times out. */
  down(): Promise<string> {
    return this.#command("down");
  }

  /** Answers SERVFAIL to everything. */
  servfail(): Promise<string> {
    return this.#command("servfail");
  }

  /** Serves the zone again. */
  up(): Promise<string> {
    return this.#command("up");
  }

  /** Queries received since start. */
  async queries(): Promise<number> {
    return Number((await this.#command("count")).slice("count=".length));
  }

  /** Stops the process. */
  async stop(): Promise<void> {
    await this.#stdin.close().catch(() => {});
    await stopChild(this.#child);
  }
}

/** Options of {@linkcode startRouter}. */
export interface RouterStartOptions {
  rulesPath: string;
  /** Holds the rules and the log; appended to the router's read and write permissions. */
  tmpDir: string;
  dnsPort: number;
  /** Where stderr (the log) goes. */
  logPath: string;
  /** Serve metrics on a free port. */
  metrics?: boolean;
  /** Flags for `deno run` itself (e.g. `--cpu-prof`). */
  denoFlags?: string[];
  /** More router flags (e.g. `--dns-tcp`). */
  routerFlags?: string[];
}

/** A router process. */
export interface RouterHandle {
  port: number;
  pid: number;
  /** The metrics port, or null. */
  metricsPort: number | null;
  /** The command line (program first). */
  command: string[];
  /** SIGTERM, then SIGKILL after 10 s; resolves when it is gone. */
  stop(): Promise<void>;
}

/**
 * Starts the router as the compiled binary runs it (the `compile` task's permissions, with
 * `tmpDir` added) with its log on `logPath`, and waits for `listening on`.
 */
export async function startRouter(options: RouterStartOptions): Promise<RouterHandle> {
  const port = await freePort();
  const metricsPort = options.metrics ? await freePort() : null;
  const command = [
    Deno.execPath(),
    "run",
    "--no-prompt",
    ...withExtraPaths(await compilePermissionFlags(), [options.tmpDir]),
    // After the compile task's flags: V8 keeps the last value given, so an extra
    // `--v8-flags=--max-semi-space-size=1` replaces the baked-in one instead of being replaced.
    ...(options.denoFlags ?? []),
    `${PROJECT_ROOT}/main.ts`,
    "-c",
    options.rulesPath,
    "-H",
    HOST,
    "-p",
    String(port),
    "--dns-server",
    `${HOST}:${options.dnsPort}`,
    ...(metricsPort === null ? [] : ["--metrics", `${HOST}:${metricsPort}`]),
    ...(options.routerFlags ?? []),
  ];
  // The log goes to a file, as journald would take it: cheaper than a pipe we would have to read,
  // dearer than /dev/null, which would hide the cost of writing it.
  const child = new Deno.Command("sh", {
    // stdout too (the router prints nothing there, but V8's --trace-gc does).
    args: ["-c", 'exec "$@" >"$ROUTER_LOG" 2>&1', "sh", ...command],
    cwd: PROJECT_ROOT,
    env: { NO_COLOR: "1", ROUTER_LOG: options.logPath },
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  let exited = false;
  child.status.then(() => exited = true);
  const listening = `listening on ${HOST}:${port}`;
  const readLog = () => Deno.readTextFile(options.logPath).catch(() => "");
  try {
    await waitFor(async () => {
      if (exited) throw new WaitAborted("the router exited");
      return (await readLog()).includes(listening);
    }, { what: listening, timeoutMs: 60_000, intervalMs: 25 });
  } catch (error) {
    await stopChild(child, 1000);
    throw new Error(
      `router did not start (${errorMessage(error)}): ${command.join(" ")}\n${await readLog()}`,
    );
  }
  return {
    port,
    pid: child.pid,
    metricsPort,
    command,
    stop: () => stopChild(child, 10_000),
  };
}

/** A floor server (the Deno one or the C one). */
export interface FloorHandle {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** Starts a floor server that takes a port (0: any free one) and prints `port=N` once listening. */
async function startFloor(what: string, program: string, args: string[]): Promise<FloorHandle> {
  const child = new Deno.Command(program, {
    args,
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  const first = await new StdoutLines(child.stdout).next(60_000);
  const port = Number(first?.match(/^port=(\d+)$/)?.[1]);
  if (!(port > 0)) {
    await stopChild(child, 1000);
    throw new Error(`${what} did not start: ${first}`);
  }
  return { port, pid: child.pid, stop: () => stopChild(child) };
}

/** Starts bench/floor_server.ts; with `lookupPath` (expected.tsv) as the lookup floor. */
export function startDenoFloor(options: { lookupPath?: string } = {}): Promise<FloorHandle> {
  const lookupPath = options.lookupPath;
  return startFloor(lookupPath === undefined ? "Deno floor" : "lookup floor", Deno.execPath(), [
    "run",
    "--allow-net",
    ...(lookupPath === undefined ? [] : [`--allow-read=${lookupPath}`]),
    `${BENCH_DIR}/floor_server.ts`,
    "--port",
    "0",
    ...(lookupPath === undefined ? [] : ["--lookup", lookupPath]),
  ]);
}

/** Starts the C floor (bench/floor.c, built by {@linkcode buildCTools}). */
export function startCFloor(binary: string): Promise<FloorHandle> {
  return startFloor("C floor", binary, ["0"]);
}

/** The bench's C programs, built. */
export interface CTools {
  loadgen: string;
  floor: string;
}

/** Where {@linkcode buildCTools} puts the binaries (ignored by git). */
export const C_BUILD_DIR = `${BENCH_DIR}/build`;

/**
 * Builds bench/loadgen.c and bench/floor.c with the system's C compiler (`cc` unless `compiler`)
 * into `dir` ({@linkcode C_BUILD_DIR} unless given), each only when its binary is missing or
 * older than its source. Null tools and the reason when the compiler is missing or fails.
 */
export async function buildCTools(
  options: { compiler?: string; dir?: string } = {},
): Promise<{ tools: CTools | null; why: string }> {
  const { compiler = "cc", dir = C_BUILD_DIR } = options;
  const tools: CTools = { loadgen: `${dir}/loadgen`, floor: `${dir}/floor` };
  await Deno.mkdir(dir, { recursive: true });
  for (const name of ["loadgen", "floor"] as const) {
    const source = `${BENCH_DIR}/${name}.c`;
    const builtAt = (await Deno.stat(tools[name]).catch(() => null))?.mtime?.getTime() ?? 0;
    if (builtAt > ((await Deno.stat(source)).mtime?.getTime() ?? Infinity)) continue;
    // Into a name of its own, then renamed: a run beside this one never sees half a binary.
    const partial = `${tools[name]}.${Deno.pid}`;
    let result: Deno.CommandOutput;
    try {
      result = await new Deno.Command(compiler, {
        args: ["-O2", "-pthread", "-o", partial, source],
        stdout: "piped",
        stderr: "piped",
      }).output();
    } catch {
      return { tools: null, why: `no C compiler ('${compiler}' not found)` };
    }
    if (!result.success) {
      await Deno.remove(partial).catch(() => {});
      const error = new TextDecoder().decode(result.stderr).trim();
      return { tools: null, why: `${compiler} failed on bench/${name}.c: ${error}` };
    }
    await Deno.rename(partial, tools[name]);
  }
  return { tools, why: `bench/loadgen.c and bench/floor.c built with ${compiler} -O2` };
}

/** Which load generator drives the servers. */
export type LoadgenTool = { kind: "c"; binary: string } | { kind: "deno" };

/**
 * Whether runs can be pinned: 2 cores or more, and `taskset` (util-linux). Unpinned, one
 * connection is bimodal on these VMs (the C floor gives 14,000 or 67,000/s): a wake-up across
 * vCPUs costs about 25 µs. So hit runs pin the server to CPU 0 and the load generator as
 * {@linkcode loadgenCpus} says.
 */
export async function canPin(cores: number): Promise<boolean> {
  return cores >= 2 && await hasTaskset();
}

/**
 * Where a pinned load generator runs: on CPU 0 with the server for 1 connection (pure
 * per-request cost, no cross-CPU wake-up), on CPU 1 for more (each side has a core).
 */
export function loadgenCpus(conns: number): string {
  return conns === 1 ? "0" : "1";
}

async function hasTaskset(): Promise<boolean> {
  try {
    return (await new Deno.Command("taskset", { args: ["-V"], stdout: "null", stderr: "null" })
      .output()).success;
  } catch {
    return false;
  }
}

/** Pins every thread of a running process to `cpus` (e.g. "0" or "0,1"); false if it failed. */
export async function pinProcess(pid: number, cpus: string): Promise<boolean> {
  try {
    const result = await new Deno.Command("taskset", {
      args: ["-a", "-p", "-c", cpus, String(pid)],
      stdout: "null",
      stderr: "piped",
    }).output();
    return result.success;
  } catch {
    return false;
  }
}

/** Options of {@linkcode runLoadgen}. */
export interface LoadgenRun {
  port: number;
  conns: number;
  keyFile: string;
  /** Closed loop for this long; 0: one pass over the keys. */
  seconds: number;
  /** Run the load generator on these CPUs (taskset -c), e.g. "1". */
  cpus?: string;
}

/** Runs the load generator once: `seconds` of closed loop, or one pass when 0. */
export async function runLoadgen(tool: LoadgenTool, options: LoadgenRun): Promise<LoadResult> {
  const args = [HOST, String(options.port), String(options.conns), options.keyFile];
  args.push(String(options.seconds));
  let argv = tool.kind === "c"
    ? [tool.binary, ...args]
    : [Deno.execPath(), "run", "--allow-net", "--allow-read", `${BENCH_DIR}/loadgen.ts`, ...args];
  if (options.cpus !== undefined) argv = ["taskset", "-c", options.cpus, ...argv];
  const command = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
  });
  const output = await command.output();
  const text = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    throw new Error(`load generator failed: ${text}${new TextDecoder().decode(output.stderr)}`);
  }
  return parseLoadLine(text);
}

/** Resident set size of a process in bytes (VmRSS), or null when it is gone. */
export async function rssBytes(pid: number): Promise<number | null> {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return match === null ? null : Number(match[1]) * 1024;
  } catch {
    return null;
  }
}

/** CPU time (user + system) a process has used so far, in seconds, or null when it is gone. */
export async function cpuSeconds(pid: number): Promise<number | null> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}

/** Prometheus samples by their full name with labels, e.g. `mxrouter_cache_entries`. */
export async function scrapeMetrics(port: number): Promise<Map<string, number>> {
  const response = await fetch(`http://${HOST}:${port}/metrics`);
  const text = await response.text();
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

/** Sum of every sample of a metric (all label sets). */
export function metricSum(samples: Map<string, number>, name: string): number {
  let sum = 0;
  for (const [key, value] of samples) {
    if (key === name || key.startsWith(name + "{")) sum += value;
  }
  return sum;
}

/**
 * Sends `keys` one after the other on one connection (as Postfix does); returns each reply line
 * and the time it took.
 */
export async function timedLookups(
  port: number,
  keys: string[],
): Promise<{ key: string; reply: string; ms: number }[]> {
  const conn = await Deno.connect({ hostname: HOST, port });
  const results = [];
  try {
    conn.setNoDelay(true);
    const reader = new LineReader(conn);
    for (const key of keys) {
      const started = performance.now();
      await writeAll(conn, new TextEncoder().encode(`get ${key}\n`));
      const line = await reader.nextLine();
      const ms = performance.now() - started;
      results.push({ key, reply: line === null ? "(closed)" : new TextDecoder().decode(line), ms });
    }
  } finally {
    conn.close();
  }
  return results;
}
