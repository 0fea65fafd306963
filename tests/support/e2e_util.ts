/**
 * Small helpers shared by the end-to-end harness: free loopback ports, bounded waiting, child
 * processes whose output is captured, and locating system binaries (Postfix and dnsmasq live in
 * /usr/sbin, which is not on every user's PATH).
 *
 * @module
 */

import dgram from "node:dgram";

/** The only address the end-to-end tests use. */
export const LOOPBACK = "127.0.0.1";

/** Options for {@linkcode freePort}. */
export interface FreePortOptions {
  /** Also require the UDP port of the same number to be free (for DNS servers). Default false. */
  udp?: boolean;
}

/**
 * Returns a loopback port that is free right now (the kernel picks it; a tiny race remains until
 * the caller binds it).
 *
 * @example
 * ```ts
 * const port = await freePort({ udp: true }); // for a DNS server: TCP and UDP
 * ```
 */
export async function freePort(options: FreePortOptions = {}): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    try {
      if (!options.udp || await udpPortFree(port)) return port;
    } finally {
      listener.close();
    }
  }
  throw new Error("no free loopback port found in 50 attempts");
}

/** Whether a UDP socket can bind 127.0.0.1:port (node:dgram: Deno's own UDP API is unstable). */
function udpPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket("udp4");
    socket.once("error", () => {
      socket.close();
      resolve(false);
    });
    socket.bind(port, LOOPBACK, () => socket.close(() => resolve(true)));
  });
}

/** Options for {@linkcode waitFor}. */
export interface WaitForOptions {
  /** What is awaited, for the error message. */
  what: string;
  /** Give up after this many milliseconds. Default 10000. */
  timeoutMs?: number;
  /** Poll interval in milliseconds. Default 50. */
  intervalMs?: number;
  /** Extra text for the timeout error, computed when it happens (e.g. a log tail). */
  detail?: () => string | Promise<string>;
}

/** Thrown by a {@linkcode waitFor} check to stop waiting at once (the wait cannot succeed). */
export class WaitAborted extends Error {
  /** Always "WaitAborted". */
  override name = "WaitAborted";
}

/**
 * Polls `check` until it returns a value other than `undefined`, `null` or `false`, and returns
 * that value; throws after `timeoutMs`. Every wait in the harness is bounded by one of these.
 * Errors thrown by `check` are retried, except {@linkcode WaitAborted}, which ends the wait.
 *
 * @example
 * ```ts
 * declare const sink: { messages(): Promise<unknown[]> };
 * const three = async () => (await sink.messages()).length >= 3;
 * await waitFor(three, { what: "3 messages", timeoutMs: 5000 });
 * ```
 */
export async function waitFor<T>(
  check: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  options: WaitForOptions,
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const intervalMs = options.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = undefined;
  while (true) {
    try {
      const value = await check();
      if (value !== undefined && value !== null && value !== false) return value;
      lastError = undefined;
    } catch (error) {
      if (error instanceof WaitAborted) throw error;
      lastError = error;
    }
    if (Date.now() >= deadline) break;
    await delay(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
  }
  const detail = options.detail ? `\n${await options.detail()}` : "";
  const cause = lastError === undefined ? "" : ` (last error: ${String(lastError)})`;
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${options.what}${cause}${detail}`);
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Resolves once a TCP connection to `hostname:port` succeeds (the server is listening), or throws
 * after `timeoutMs`.
 */
export async function waitForTcp(
  port: number,
  options: { hostname?: string; timeoutMs?: number; what?: string } = {},
): Promise<void> {
  const hostname = options.hostname ?? LOOPBACK;
  await waitFor(async () => {
    const conn = await Deno.connect({ hostname, port });
    conn.close();
    return true;
  }, { what: options.what ?? `TCP ${hostname}:${port}`, timeoutMs: options.timeoutMs ?? 10_000 });
}

const SYSTEM_DIRS = ["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/bin", "/usr/local/bin"];

/**
 * Sends one DNS query over UDP to a loopback port and reports whether any reply with its ID came
 * back within `timeoutMs`: whether a DNS server there is up yet. Hand-made, so the harness needs
 * no DNS library. `name` is a list of labels (none for the root); `type` the query type number.
 *
 * @example
 * ```ts
 * await answersDns(5353, { name: ["test"], type: 6, timeoutMs: 200 }); // SOA of "test."
 * ```
 */
export function answersDns(
  port: number,
  query: { name: readonly string[]; type: number; timeoutMs: number },
): Promise<boolean> {
  const id = Math.floor(Math.random() * 0x10000);
  const encoder = new TextEncoder();
  const bytes = new Uint8Array([
    ...[id >> 8, id & 0xff, 0x01, 0x00], // ID, flags: RD
    ...[0, 1, 0, 0, 0, 0, 0, 0], // QDCOUNT 1
    ...query.name.flatMap((label) => [label.length, ...encoder.encode(label)]),
    0, // the root
    ...[0, query.type, 0, 1], // type, IN
  ]);
  return new Promise((resolve) => {
    const socket = dgram.createSocket("udp4");
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.close();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), query.timeoutMs);
    socket.on("error", () => finish(false));
    socket.on("message", (reply: Uint8Array) => {
      if (reply.length >= 2 && reply[0] === (id >> 8) && reply[1] === (id & 0xff)) finish(true);
    });
    socket.send(bytes, port, LOOPBACK);
  });
}

/**
 * Finds an executable by name on PATH or in the usual sbin directories; `null` when absent.
 *
 * @example
 * ```ts
 * const postfix = findBinary("postfix"); // "/usr/sbin/postfix" on Debian
 * ```
 */
export function findBinary(name: string): string | null {
  const path = Deno.env.get("PATH") ?? "";
  for (const dir of [...path.split(":").filter((d) => d !== ""), ...SYSTEM_DIRS]) {
    const candidate = `${dir}/${name}`;
    try {
      const info = Deno.statSync(candidate);
      if (info.isFile && info.mode !== null && (info.mode & 0o111) !== 0) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** Like {@linkcode findBinary}, but throws naming the Debian package to install. */
export function requireBinary(name: string, debianPackage: string): string {
  const found = findBinary(name);
  if (found === null) {
    throw new Error(`${name} not found: install it with "apt-get install ${debianPackage}"`);
  }
  return found;
}

/** The most output kept per stream of a captured process (the tail is what matters). */
const MAX_CAPTURE = 1 << 20;

/** Options for {@linkcode spawnCaptured}. */
export interface SpawnCapturedOptions {
  /** Arguments after the program. */
  args?: string[];
  /** Working directory. */
  cwd?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/** A running child process whose stdout and stderr are collected in memory. */
export interface CapturedProcess {
  /** The child's PID. */
  readonly pid: number;
  /** Resolves when the child has exited and its output has been read to the end. */
  readonly status: Promise<Deno.CommandStatus>;
  /** True once the child has exited. */
  exited(): boolean;
  /** Everything the child wrote to stdout so far (the last MiB). */
  stdout(): string;
  /** Everything the child wrote to stderr so far (the last MiB). */
  stderr(): string;
  /** Sends a signal to the child; ignores a child that is already gone. */
  kill(signal?: Deno.Signal): void;
  /**
   * Sends SIGTERM, waits up to `timeoutMs` (default 5000), then SIGKILL; resolves with the exit
   * status once the child is reaped.
   */
  stop(options?: { timeoutMs?: number; signal?: Deno.Signal }): Promise<Deno.CommandStatus>;
}

/**
 * Spawns a long-running child with stdin closed and stdout/stderr captured, so that a failing test
 * can show what the child said, and so that the child is always reaped (no zombies).
 */
export function spawnCaptured(
  program: string,
  options: SpawnCapturedOptions = {},
): CapturedProcess {
  const child = new Deno.Command(program, {
    args: options.args ?? [],
    cwd: options.cwd,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  let err = "";
  const append = (current: string, chunk: string): string => {
    const next = current + chunk;
    return next.length > MAX_CAPTURE ? next.slice(next.length - MAX_CAPTURE) : next;
  };
  const drain = async (stream: ReadableStream<Uint8Array>, onText: (text: string) => void) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) onText(text);
  };
  const outDone = drain(child.stdout, (t) => out = append(out, t));
  const errDone = drain(child.stderr, (t) => err = append(err, t));
  let hasExited = false;
  const status = (async () => {
    const [s] = await Promise.all([child.status, outDone, errDone]);
    hasExited = true;
    return s;
  })();
  const kill = (signal: Deno.Signal = "SIGTERM") => {
    if (hasExited) return;
    try {
      child.kill(signal);
    } catch {
      // already exited
    }
  };
  return {
    pid: child.pid,
    status,
    exited: () => hasExited,
    stdout: () => out,
    stderr: () => err,
    kill,
    async stop(stopOptions = {}) {
      if (!hasExited) {
        kill(stopOptions.signal ?? "SIGTERM");
        const timeoutMs = stopOptions.timeoutMs ?? 5000;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timedOut = await Promise.race([
          status.then(() => false),
          new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(true), timeoutMs)),
        ]);
        clearTimeout(timer);
        if (timedOut) kill("SIGKILL");
      }
      return await status;
    },
  };
}

/** The result of {@linkcode run}. */
export interface RunResult {
  /** Exit code. */
  code: number;
  /** Standard output, decoded. */
  stdout: string;
  /** Standard error, decoded. */
  stderr: string;
}

/** Options for {@linkcode run}. */
export interface RunOptions {
  /** Arguments after the program. */
  args?: string[];
  /** Text written to standard input (then closed); stdin is empty otherwise. */
  stdin?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Kill the command after this many milliseconds. Default 30000. */
  timeoutMs?: number;
}

/**
 * Runs a short command to completion with a time limit and returns its exit code and output.
 *
 * @example
 * ```ts
 * const { code, stdout } = await run("/usr/sbin/postmap", { args: ["-q", "key", "tcp:..."] });
 * ```
 */
export async function run(program: string, options: RunOptions = {}): Promise<RunResult> {
  const child = new Deno.Command(program, {
    args: options.args ?? [],
    env: options.env,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timeoutMs = options.timeoutMs ?? 30_000;
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
  }, timeoutMs);
  try {
    // Collect output while writing stdin: a child that answers as it reads would otherwise fill
    // its stdout pipe and stop reading, and both sides would wait forever.
    const outputPromise = child.output();
    if (options.stdin !== undefined) {
      const writer = child.stdin.getWriter();
      try {
        await writer.write(new TextEncoder().encode(options.stdin));
        await writer.close();
      } catch {
        // the child may exit before reading everything (postmap stops at a fatal error)
      }
    }
    const output = await outputPromise;
    const decoder = new TextDecoder();
    const result = {
      code: output.code,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
    };
    if (killed) {
      throw new Error(
        `${program} ${(options.args ?? []).join(" ")} killed after ${timeoutMs} ms; ` +
          `stderr: ${result.stderr}`,
      );
    }
    return result;
  } finally {
    clearTimeout(timer);
  }
}

/** Runs cleanup steps in order, continuing past failures; throws the first failure at the end. */
export async function runAll(steps: Array<() => Promise<unknown> | unknown>): Promise<void> {
  const errors: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (error) {
      errors.push(error);
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, "several cleanup steps failed");
}
