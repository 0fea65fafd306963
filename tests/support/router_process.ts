/**
 * The router as a separate process, started exactly as the compiled binary runs: with the
 * permission and V8 flags of deno.json's `compile` task (read from deno.json, never restated
 * here), so a test fails when the baked permissions are too tight. The one documented
 * difference: the test's temporary directory is appended to `--allow-read=` and `--allow-write=`,
 * because the test's configuration file lives there and not in /etc/postfix.
 *
 * `--no-prompt` is added too: a compiled binary never prompts, so a missing permission must fail
 * here as it would there instead of waiting for an answer.
 *
 * @module
 */

import { freePort, LOOPBACK, spawnCaptured } from "./e2e_util.ts";
import type { CapturedProcess } from "./e2e_util.ts";

/** The project root (where deno.json and main.ts are). */
export const PROJECT_ROOT: string = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/**
 * Returns the flags the `compile` task bakes into the binary, in their order: permissions
 * (`--allow-*`, `--deny-*`) and `--v8-flags=`.
 *
 * @example
 * ```ts
 * await compilePermissionFlags(); // ["--allow-net", "--allow-read=/etc/postfix,...", ...]
 * ```
 */
export async function compilePermissionFlags(
  denoJsonPath = `${PROJECT_ROOT}/deno.json`,
): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(denoJsonPath)) as {
    tasks?: Record<string, string | { command?: string }>;
  };
  const task = config.tasks?.compile;
  const command = typeof task === "string" ? task : task?.command;
  if (command === undefined) throw new Error(`${denoJsonPath} has no "compile" task`);
  const words = command.split(/\s+/);
  if (!words.includes("compile")) {
    throw new Error(`the compile task does not run "deno compile": ${command}`);
  }
  // Permissions, and the V8 flags the binary runs with (memory tuning).
  const flags = words.filter((w) =>
    /^--(allow|deny)-[a-z-]+(=.*)?$/.test(w) || w === "-A" || w.startsWith("--v8-flags=")
  );
  if (flags.length === 0) {
    throw new Error(`the compile task has no permission or V8 flags: ${command}`);
  }
  return flags;
}

/**
 * Appends `dirs` to every `--allow-read=` and `--allow-write=` list. A flag without a list
 * (`--allow-read` alone: everything) is left as it is; a missing one is not added.
 *
 * @example
 * ```ts
 * withExtraPaths(["--allow-read=/etc/postfix"], ["/tmp/x"]); // ["--allow-read=/etc/postfix,/tmp/x"]
 * ```
 */
export function withExtraPaths(flags: string[], dirs: string[]): string[] {
  return flags.map((flag) => {
    const match = /^(--allow-(?:read|write))=(.+)$/.exec(flag);
    return match ? `${match[1]}=${[match[2], ...dirs].join(",")}` : flag;
  });
}

/** Options for {@linkcode startRouter}. */
export interface StartRouterOptions {
  /** The rules file (`-c`). */
  configPath: string;
  /**
   * The test's temporary directory: appended to the `--allow-read=` and `--allow-write=` lists
   * (it should hold the config file).
   */
  tmpDir: string;
  /** DNS servers (`--dns-server`, repeated), e.g. `["127.0.0.1:5353"]`. */
  dnsServers: string[];
  /** Port (`-p`); default a free one. Pass the old port to restart a router in place. */
  port?: number;
  /** Host (`-H`). Default 127.0.0.1. */
  host?: string;
  /** `--dns-timeout` in seconds. Default 2. */
  dnsTimeoutSeconds?: number;
  /** More router arguments, e.g. `["-v"]` or `["--cache-ttl", "0"]`. */
  args?: string[];
  /** Environment variables for the router (added to the test's own). */
  env?: Record<string, string>;
  /** Give up waiting for the listening line after this many milliseconds. Default 30000. */
  startTimeoutMs?: number;
}

/** A running router process. */
export interface RouterProcess {
  /** Its port. */
  readonly port: number;
  /** Its host. */
  readonly host: string;
  /** `tcp:HOST:PORT`, for postmap and transport_maps. */
  readonly table: string;
  /** Its PID. */
  readonly pid: number;
  /** The exact command line it was started with (program first). */
  readonly command: string[];
  /** Everything it wrote to stderr so far (its log). */
  stderr(): string;
  /** Everything it wrote to stdout so far. */
  stdout(): string;
  /** Sends a signal (default SIGTERM) without waiting. */
  kill(signal?: Deno.Signal): void;
  /**
   * Sends SIGTERM, waits up to `timeoutMs` (default 5000) then SIGKILLs; resolves with the exit
   * code once the process is reaped.
   */
  stop(options?: { timeoutMs?: number }): Promise<number>;
  /** Resolves with the exit status when the process ends (for tests of start-up failures). */
  readonly exited: Promise<Deno.CommandStatus>;
}

/**
 * Starts the router (`deno run <compile permissions> main.ts ...`) and waits for its
 * `listening on HOST:PORT` log line. If it exits or stays silent, throws with its stderr.
 *
 * @example
 * ```ts
 * declare const tmp: string;
 * declare const dnsmasq: { address: string };
 * const router = await startRouter({
 *   configPath: `${tmp}/rules.conf`,
 *   tmpDir: tmp,
 *   dnsServers: [dnsmasq.address],
 * });
 * try {
 *   // postmap -q key router.table
 * } finally {
 *   await router.stop();
 * }
 * ```
 */
export async function startRouter(options: StartRouterOptions): Promise<RouterProcess> {
  const host = options.host ?? LOOPBACK;
  const port = options.port ?? await freePort();
  const permissions = withExtraPaths(await compilePermissionFlags(), [options.tmpDir]);
  const args = [
    "run",
    "--no-prompt",
    ...permissions,
    `${PROJECT_ROOT}/main.ts`,
    "-c",
    options.configPath,
    "-p",
    String(port),
    "-H",
    host,
    ...options.dnsServers.flatMap((s) => ["--dns-server", s]),
    "--dns-timeout",
    String(options.dnsTimeoutSeconds ?? 2),
    ...(options.args ?? []),
  ];
  const program = Deno.execPath();
  const proc: CapturedProcess = spawnCaptured(program, {
    args,
    cwd: PROJECT_ROOT,
    env: { NO_COLOR: "1", ...options.env },
  });
  const listening = `listening on ${host}:${port}`;
  const timeoutMs = options.startTimeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  while (!proc.stderr().includes(listening)) {
    if (proc.exited() || Date.now() >= deadline) {
      const why = proc.exited()
        ? `exited with ${(await proc.status).code}`
        : `did not log "${listening}" within ${timeoutMs} ms`;
      await proc.stop();
      throw new Error(
        `router ${why}\ncommand: ${[program, ...args].join(" ")}\nstderr:\n${proc.stderr()}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return {
    port,
    host,
    table: `tcp:${host}:${port}`,
    pid: proc.pid,
    command: [program, ...args],
    stderr: () => proc.stderr(),
    stdout: () => proc.stdout(),
    kill: (signal) => proc.kill(signal),
    stop: async (stopOptions) => (await proc.stop(stopOptions)).code,
    exited: proc.status,
  };
}
