/**
 * A private Postfix instance for end-to-end tests, beside (never instead of) any system instance,
 * following ../shared/postfix-facts.md: its own configuration, queue and data directories under a
 * temporary directory, smtpd on a loopback port, logging to a file, plus smtp-sink servers that
 * store what they receive, and the Postfix client tools (postmap, postqueue, sendmail,
 * smtp-source) pointed at it with `-c DIR`.
 *
 * Layout under the instance directory (every directory traversable by the `postfix` user):
 *
 * ```
 * DIR/etc/main.cf, master.cf     configuration (root-owned)
 * DIR/spool/                      queue_directory (Postfix creates the subdirectories)
 * DIR/data/                       data_directory (owned by postfix)
 * DIR/maillog                     maillog_file
 * ```
 *
 * The master runs in the foreground (`postfix start-fg`) as a child of the test, so it is stopped
 * by PID and reaped even on machines whose init does not reap orphans.
 *
 * Needs root (Postfix drops to the `postfix` user) and the Debian package `postfix`.
 *
 * @module
 */

import {
  freePort,
  LOOPBACK,
  requireBinary,
  run,
  runAll,
  spawnCaptured,
  waitFor,
  waitForTcp,
} from "./e2e_util.ts";
import type { CapturedProcess, RunResult } from "./e2e_util.ts";

/** The Debian package providing every Postfix program used here. */
export const POSTFIX_PACKAGE = "postfix";

/** The user Postfix daemons and smtp-sink run as. */
const MAIL_OWNER = "postfix";

function bin(name: string): string {
  return requireBinary(name, POSTFIX_PACKAGE);
}

/**
 * Writes the smallest main.cf that `postmap -c DIR` needs to query a table (no running Postfix).
 *
 * @example
 * ```ts
 * const tmp = await Deno.makeTempDir();
 * const configDir = await writePostmapConfig(`${tmp}/postmap`);
 * await postmapQuery({ configDir, table: "tcp:127.0.0.1:10099", key: "a@contoso.test" });
 * ```
 */
export async function writePostmapConfig(dir: string): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/main.cf`, "compatibility_level = 3.6\n");
  await backdate(`${dir}/main.cf`);
  return dir;
}

/** What one `postmap -q KEY TABLE` printed. */
export interface PostmapResult {
  /** 0: found; 1: not found (empty output) or error (stderr says `fatal: ... query error`). */
  code: number;
  /** The decoded value when found, else null. */
  value: string | null;
  /** Standard error (a fatal message on a 400 reply). */
  stderr: string;
}

/** Options for {@linkcode postmapQuery}. */
export interface PostmapQueryOptions {
  /** A directory holding a main.cf ({@linkcode writePostmapConfig} or an instance's configDir). */
  configDir: string;
  /** The table, e.g. `tcp:127.0.0.1:10099`. */
  table: string;
  /** The key, as Postfix would look it up. */
  key: string;
  /** Kill postmap after this many milliseconds. Default 30000. */
  timeoutMs?: number;
}

/**
 * Runs `postmap -c DIR -q KEY TABLE`: Postfix's own tcp_table client, one connection, one lookup.
 */
export async function postmapQuery(options: PostmapQueryOptions): Promise<PostmapResult> {
  const result = await run(bin("postmap"), {
    args: ["-c", options.configDir, "-q", options.key, options.table],
    timeoutMs: options.timeoutMs,
  });
  return {
    code: result.code,
    value: result.code === 0 ? result.stdout.replace(/\n$/, "") : null,
    stderr: result.stderr,
  };
}

/** What `postmap -q - TABLE` printed for a list of keys. */
export interface PostmapManyResult {
  /** 0 when at least one key was found, 1 otherwise or on an error. */
  code: number;
  /** `[key, value]` for every key found, in input order (keys not found print nothing). */
  found: Array<[string, string]>;
  /** Standard error (a fatal message stops postmap at the first 400 reply). */
  stderr: string;
}

/** Options for {@linkcode postmapQueryMany}. */
export interface PostmapQueryManyOptions {
  /** A directory holding a main.cf. */
  configDir: string;
  /** The table, e.g. `tcp:127.0.0.1:10099`. */
  table: string;
  /** Keys, one lookup each, all on one connection. */
  keys: string[];
  /** Kill postmap after this many milliseconds. Default 120000. */
  timeoutMs?: number;
}

/**
 * Runs `postmap -c DIR -q - TABLE` with the keys on standard input: every key goes over one
 * connection, as Postfix daemons send them.
 */
export async function postmapQueryMany(
  options: PostmapQueryManyOptions,
): Promise<PostmapManyResult> {
  const result = await run(bin("postmap"), {
    args: ["-c", options.configDir, "-q", "-", options.table],
    stdin: options.keys.map((k) => k + "\n").join(""),
    timeoutMs: options.timeoutMs ?? 120_000,
  });
  const found: Array<[string, string]> = [];
  for (const line of result.stdout.split("\n")) {
    if (line === "") continue;
    const tab = line.indexOf("\t");
    if (tab < 0) throw new Error(`unexpected postmap output line: ${JSON.stringify(line)}`);
    found.push([line.slice(0, tab), line.slice(tab + 1)]);
  }
  return { code: result.code, found, stderr: result.stderr };
}

/** One message an smtp-sink stored. */
export interface SinkMessage {
  /** The file it was stored in. */
  file: string;
  /** Envelope sender, from the `X-Mail-Args` line. */
  sender: string;
  /** Envelope recipients, from the `X-Rcpt-Args` lines. */
  recipients: string[];
  /** The whole file. */
  text: string;
}

/** Options for {@linkcode startSmtpSink}. */
export interface StartSmtpSinkOptions {
  /** Directory the messages are stored in (created, owned by postfix). */
  dir: string;
  /** A name for messages and errors, e.g. "relay". */
  name: string;
  /** Port; default a free one. */
  port?: number;
}

/** A running smtp-sink that stores every message in its directory. */
export interface SmtpSink {
  /** Its name. */
  readonly name: string;
  /** Its loopback port. */
  readonly port: number;
  /** Where it stores messages. */
  readonly dir: string;
  /** Its PID. */
  readonly pid: number;
  /** Every message stored so far. */
  messages(): Promise<SinkMessage[]>;
  /** Every envelope recipient stored so far (one entry per recipient per message). */
  recipients(): Promise<string[]>;
  /** Stops it by PID and reaps it. */
  stop(): Promise<void>;
}

/**
 * Starts `smtp-sink -u postfix -d DIR/%Y%m%d%H%M%S. 127.0.0.1:PORT 64` and waits until it accepts
 * connections.
 */
export async function startSmtpSink(options: StartSmtpSinkOptions): Promise<SmtpSink> {
  const dir = options.dir;
  await Deno.mkdir(dir, { recursive: true });
  await chownToMailOwner(dir);
  const port = options.port ?? await freePort();
  const proc = spawnCaptured(bin("smtp-sink"), {
    args: [
      "-u",
      MAIL_OWNER,
      "-h",
      `sink-${options.name}.test`,
      "-d",
      `${dir}/%Y%m%d%H%M%S.`,
      `${LOOPBACK}:${port}`,
      "64",
    ],
  });
  try {
    await waitForTcp(port, { what: `smtp-sink ${options.name} on port ${port}` });
  } catch (error) {
    await proc.stop();
    throw new Error(`${String(error)}\nsmtp-sink stderr: ${proc.stderr()}`);
  }
  const messages = async (): Promise<SinkMessage[]> => {
    const list: SinkMessage[] = [];
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile) continue;
      const file = `${dir}/${entry.name}`;
      list.push(parseSinkMessage(file, await Deno.readTextFile(file)));
    }
    return list.sort((a, b) => a.file.localeCompare(b.file));
  };
  return {
    name: options.name,
    port,
    dir,
    pid: proc.pid,
    messages,
    recipients: async () => (await messages()).flatMap((m) => m.recipients),
    async stop() {
      await proc.stop();
    },
  };
}

/** Parses an smtp-sink dump file (X-Mail-Args, X-Rcpt-Args lines, then the message). */
export function parseSinkMessage(file: string, text: string): SinkMessage {
  let sender = "";
  const recipients: string[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line === "\r") break;
    const mail = /^X-Mail-Args: <([^>]*)>/.exec(line);
    if (mail) sender = mail[1];
    const rcpt = /^X-Rcpt-Args: <([^>]*)>/.exec(line);
    if (rcpt) recipients.push(rcpt[1]);
  }
  return { file, sender, recipients, text };
}

/** One message in the Postfix queue (`postqueue -j`). */
export interface QueuedMessage {
  /** "deferred", "active", "incoming", "hold", "maildrop". */
  queue_name: string;
  /** Queue ID. */
  queue_id: string;
  /** Envelope sender. */
  sender: string;
  /** Recipients not yet delivered, each with the reason of the last failure. */
  recipients: Array<{ address: string; delay_reason?: string }>;
}

/** Options for {@linkcode startPostfix}. */
export interface StartPostfixOptions {
  /** The instance directory (created; its parents must be traversable by the postfix user). */
  dir: string;
  /** `transport_maps`, e.g. `tcp:127.0.0.1:10099`. */
  transportMaps: string;
  /** `default_transport`, e.g. `smtp:[127.0.0.1]:2525`. */
  defaultTransport: string;
  /** smtpd's loopback port; default a free one. */
  smtpdPort?: number;
  /** More main.cf settings (override the defaults). */
  mainCf?: Record<string, string>;
  /** Give up when Postfix has not started within this many milliseconds. Default 30000. */
  startTimeoutMs?: number;
}

/** A running private Postfix instance. */
export interface PostfixInstance {
  /** The instance directory. */
  readonly dir: string;
  /** The configuration directory, for `-c` (and `sendmail -C`). */
  readonly configDir: string;
  /** smtpd's loopback port. */
  readonly smtpdPort: number;
  /** PID of the `postfix start-fg` process (the master daemon runs as its child). */
  readonly pid: number;
  /** The maillog file's contents ("" before the first line). */
  maillog(): Promise<string>;
  /**
   * Sends one message over SMTP with smtp-source (to smtpd). A refused recipient makes
   * smtp-source exit non-zero with the server's reply on stderr.
   */
  sendSmtp(options: { from: string; to: string }): Promise<RunResult>;
  /** Submits one message locally: `sendmail -C DIR -f FROM TO` (postdrop, then pickup). */
  sendmail(options: { from: string; to: string; subject?: string }): Promise<RunResult>;
  /** The queue, from `postqueue -c DIR -j`. */
  queue(): Promise<QueuedMessage[]>;
  /** `postqueue -c DIR -f`: retries every deferred message now. */
  flush(): Promise<void>;
  /** Stops the instance (`postfix stop`, then by PID) and reaps it. */
  stop(): Promise<void>;
}

/** The services Postfix needs, none chrooted (the queue is in a temporary directory). */
function masterCf(smtpdPort: number): string {
  return `# generated by tests/support/postfix.ts
${LOOPBACK}:${smtpdPort} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp -o syslog_name=postfix/$service_name
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;
}

/**
 * Writes main.cf and master.cf for an instance in `dir` and returns the configuration directory.
 * Exposed for tests that only need the files; {@linkcode startPostfix} calls it.
 */
export async function writePostfixConfig(
  options: StartPostfixOptions & { smtpdPort: number },
): Promise<string> {
  const dir = options.dir;
  const configDir = `${dir}/etc`;
  await Deno.mkdir(configDir, { recursive: true });
  await Deno.mkdir(`${dir}/spool`, { recursive: true });
  await Deno.mkdir(`${dir}/data`, { recursive: true });
  await Deno.chmod(dir, 0o755);
  await chownToMailOwner(`${dir}/data`);
  const settings: Record<string, string> = {
    compatibility_level: "3.6",
    queue_directory: `${dir}/spool`,
    data_directory: `${dir}/data`,
    maillog_file: `${dir}/maillog`,
    maillog_file_prefixes: dir,
    myhostname: "postfix-e2e.test",
    mydomain: "postfix-e2e.test",
    myorigin: "$myhostname",
    inet_interfaces: LOOPBACK,
    inet_protocols: "ipv4",
    mydestination: "",
    relay_domains: "",
    mynetworks: "127.0.0.0/8",
    alias_maps: "",
    alias_database: "",
    disable_dns_lookups: "yes",
    smtp_tls_security_level: "none",
    smtpd_tls_security_level: "none",
    transport_maps: options.transportMaps,
    default_transport: options.defaultTransport,
    // Deliveries to the sinks must not wait for retry timers the tests do not control.
    smtp_connect_timeout: "5s",
    ...options.mainCf,
  };
  const mainCf = Object.entries(settings).map(([k, v]) => `${k} = ${v}`.trimEnd()).join("\n");
  await Deno.writeTextFile(
    `${configDir}/main.cf`,
    `# generated by tests/support/postfix.ts\n${mainCf}\n`,
  );
  await Deno.writeTextFile(`${configDir}/master.cf`, masterCf(options.smtpdPort));
  await backdate(`${configDir}/main.cf`);
  await backdate(`${configDir}/master.cf`);
  return configDir;
}

/**
 * Starts a private Postfix instance and waits until its master daemon has started and smtpd
 * accepts connections.
 *
 * @example
 * ```ts
 * declare const tmp: string;
 * declare const router: { port: number };
 * declare const defaultSink: SmtpSink;
 * const postfix = await startPostfix({
 *   dir: `${tmp}/postfix`,
 *   transportMaps: `tcp:127.0.0.1:${router.port}`,
 *   defaultTransport: `smtp:[127.0.0.1]:${defaultSink.port}`,
 * });
 * try {
 *   await postfix.sendmail({ from: "a@sender.test", to: "b@contoso.test" });
 * } finally {
 *   await postfix.stop();
 * }
 * ```
 */
export async function startPostfix(options: StartPostfixOptions): Promise<PostfixInstance> {
  const postfix = bin("postfix");
  const smtpdPort = options.smtpdPort ?? await freePort();
  const configDir = await writePostfixConfig({ ...options, smtpdPort });
  const dir = options.dir;
  const maillogPath = `${dir}/maillog`;
  const maillog = async () => {
    try {
      return await Deno.readTextFile(maillogPath);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return "";
      throw error;
    }
  };
  const proc: CapturedProcess = spawnCaptured(postfix, { args: ["-c", configDir, "start-fg"] });
  const stop = async () => {
    await runAll([
      async () => {
        if (proc.exited()) return;
        // Ask the master to stop (it stops its children), then make sure by PID.
        await run(postfix, { args: ["-c", configDir, "stop"], timeoutMs: 15_000 });
      },
      async () => {
        await waitFor(() => proc.exited(), { what: "postfix master to exit", timeoutMs: 10_000 })
          .catch(() => undefined);
        if (!proc.exited()) {
          const masterPid = await readMasterPid(dir);
          if (masterPid !== null) killPid(masterPid, "SIGKILL");
        }
        await proc.stop();
      },
    ]);
  };
  try {
    await waitFor(async () => {
      if (proc.exited()) throw new Error("postfix start-fg exited");
      return (await maillog()).includes("daemon started");
    }, {
      what: "the private Postfix master to start",
      timeoutMs: options.startTimeoutMs ?? 30_000,
      detail: async () => `postfix: ${proc.stderr()}\nmaillog:\n${await maillog()}`,
    });
    await waitForTcp(smtpdPort, { what: `smtpd on port ${smtpdPort}` });
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
  const env = { MAIL_CONFIG: configDir };
  return {
    dir,
    configDir,
    smtpdPort,
    pid: proc.pid,
    maillog,
    sendSmtp: ({ from, to }) =>
      run(bin("smtp-source"), {
        args: ["-m", "1", "-M", "client.test", "-f", from, "-t", to, `${LOOPBACK}:${smtpdPort}`],
        timeoutMs: 60_000,
      }),
    sendmail: ({ from, to, subject }) =>
      run(bin("sendmail"), {
        args: ["-C", configDir, "-f", from, "-i", "--", to],
        stdin: `From: <${from}>\nTo: <${to}>\nSubject: ${
          subject ?? `e2e ${to}`
        }\n\ne2e test message\n`,
        env,
        timeoutMs: 30_000,
      }),
    async queue() {
      const result = await run(bin("postqueue"), { args: ["-c", configDir, "-j"], env });
      if (result.code !== 0) throw new Error(`postqueue -j failed: ${result.stderr}`);
      return result.stdout.split("\n").filter((l) => l !== "").map((l) =>
        JSON.parse(l) as QueuedMessage
      );
    },
    async flush() {
      const result = await run(bin("postqueue"), { args: ["-c", configDir, "-f"], env });
      if (result.code !== 0) throw new Error(`postqueue -f failed: ${result.stderr}`);
    },
    stop,
  };
}

/**
 * Sets a file's times a minute into the past. Postfix reads a configuration file again, after a
 * one-second sleep, while the file's mtime is not older than the read (in case it is being
 * edited): a main.cf written just now costs every Postfix program up to 2 s.
 */
async function backdate(path: string): Promise<void> {
  const past = new Date(Date.now() - 60_000);
  await Deno.utime(path, past, past);
}

async function readMasterPid(dir: string): Promise<number | null> {
  try {
    const pid = parseInt((await Deno.readTextFile(`${dir}/spool/pid/master.pid`)).trim(), 10);
    return Number.isFinite(pid) && pid > 1 ? pid : null;
  } catch {
    return null;
  }
}

function killPid(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(pid, signal);
  } catch {
    // already gone
  }
}

async function chownToMailOwner(path: string): Promise<void> {
  const id = await run(requireBinary("id", "coreutils"), { args: ["-u", MAIL_OWNER] });
  const gid = await run(requireBinary("id", "coreutils"), { args: ["-g", MAIL_OWNER] });
  if (id.code !== 0 || gid.code !== 0) {
    throw new Error(`user ${MAIL_OWNER} not found: install it with "apt-get install postfix"`);
  }
  await Deno.chown(path, parseInt(id.stdout, 10), parseInt(gid.stdout, 10));
}

/**
 * Where every sent recipient is, lower-cased: the names of the sinks it reached and the queue
 * (`queue:ID`).
 *
 * @example
 * ```ts
 * declare const sinks: Record<string, SmtpSink>;
 * declare const postfix: PostfixInstance;
 * (await whereIs(sinks, postfix)).get("user@contoso.test"); // ["relay"]
 * ```
 */
export async function whereIs(
  sinks: Record<string, SmtpSink>,
  postfix: PostfixInstance,
): Promise<Map<string, string[]>> {
  const places = new Map<string, string[]>();
  const add = (rcpt: string, place: string) =>
    places.set(rcpt.toLowerCase(), [...places.get(rcpt.toLowerCase()) ?? [], place]);
  for (const [name, sink] of Object.entries(sinks)) {
    for (const rcpt of await sink.recipients()) add(rcpt, name);
  }
  for (const message of await postfix.queue()) {
    for (const r of message.recipients) add(r.address, `queue:${message.queue_name}`);
  }
  return places;
}
