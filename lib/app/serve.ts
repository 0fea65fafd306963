/**
 * The running service: start (rules, DNS, cache, router, listeners, metrics), reload on SIGHUP,
 * stop on SIGTERM or SIGINT. main.ts calls {@linkcode serve}; everything it needs comes from the
 * parsed command line.
 *
 * @module
 */

import { errorMessage, plural } from "../common/errors.ts";
import { log, setupLogging, type StderrSink, writeFatal } from "../common/log.ts";
import { decisionChangeText, failureLogger, lookupLogger } from "./lookup_log.ts";
import { createResolver, type DnsQueryEvent, type DnsResolver } from "../dns/resolver.ts";
import { PROBE_TIMEOUT_MS } from "../dns/health.ts";
import { InflightLimit } from "../dns/inflight_limit.ts";
import { formatHostPort } from "../common/address.ts";
import type { DnsServer, MxOutcome, MxResolver } from "../dns/types.ts";
import { MxCache } from "../routing/cache.ts";
import { combineObservers, type Decision, type LookupObserver, Router } from "../routing/router.ts";
import type { RuleSet } from "../routing/rules.ts";
import type { ProtocolCodec } from "../server/codec.ts";
import { ConnectionLimit } from "../server/connection_limit.ts";
import {
  formatListenAddress,
  groupId,
  type ListenAddress,
  openListener,
  removeOwnSocket,
} from "../server/listen.ts";
import { REQUEST_TIMEOUT_MS, TableServer } from "../server/server.ts";
import { socketmapCodec } from "../server/socketmap.ts";
import { tcpTableCodec } from "../server/tcp_table.ts";
import { PROGRAM, type ServeOptions, VERSION } from "./cli.ts";
import { loadDnsServers, loadRuleSet } from "./load.ts";
import type { createMetrics, RouterMetrics } from "./metrics.ts";
import { startStatsLog } from "./stats.ts";
import { type CacheFile, openCacheFile } from "./cache_file.ts";
import { healthVerdict } from "./healthz.ts";
import { startStatusUpdates, statusText, SystemdNotifier } from "./systemd_notify.ts";

/** Requests already read get this long to be answered on SIGTERM. */
const STOP_GRACE_MS = 5000;

/**
 * Why the service cannot start: printed as `PROGRAM: LINE` each, then exit with `exitCode`.
 *
 * @example
 * ```ts
 * throw new StartupError(["fatal: 127.0.0.1:10099: address in use"]);
 * ```
 */
export class StartupError extends Error {
  /** 1 for a fatal condition at start (unreadable file, address in use), 2 for a usage error. */
  readonly exitCode: number;
  /** The lines to print, each without the program name. */
  readonly lines: string[];

  constructor(lines: string[], exitCode = 1) {
    super(lines.join("; "));
    this.lines = lines;
    this.exitCode = exitCode;
  }
}

/**
 * Runs the service until SIGTERM or SIGINT, then exits 0; exits 1 (or 2) with the reason when it
 * cannot start.
 *
 * @example
 * ```ts
 * import { parseCommandLine } from "./cli.ts";
 *
 * const command = parseCommandLine(Deno.args);
 * if (command.kind === "serve") await serve(command.options);
 * ```
 */
export async function serve(options: ServeOptions): Promise<void> {
  // Signals that come before the service is built (`systemctl reload` or `stop` right after
  // start) would kill the process by default: note them, and act once it serves.
  let service: Service | null = null;
  let reloadAsked = false;
  let stopAsked: string | null = null;
  const logSink = setupLogging({
    verbosity: options.verbosity,
    journal: Deno.env.get("JOURNAL_STREAM") !== undefined,
  });
  const stop = async (signal: string) => {
    if (service === null) {
      stopAsked ??= signal;
      return;
    }
    await service.stop(signal);
    logSink.flush();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGHUP", () => service === null ? reloadAsked = true : service.reload());
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  try {
    service = await Service.start(options, logSink);
  } catch (error) {
    if (!(error instanceof StartupError)) throw error;
    writeFatal(error.lines.map((line) => `${PROGRAM}: ${line}`));
    Deno.exit(error.exitCode);
  }
  if (stopAsked !== null) await stop(stopAsked);
  if (reloadAsked) service.reload();
  await service.serving;
}

/** One listening socket and the protocol it speaks. */
interface Endpoint {
  address: ListenAddress;
  codec: ProtocolCodec;
  listener: Deno.Listener;
  /** Which unix socket file is ours (removed at stop only if still there); null for TCP. */
  socketFile: string | null;
}

/** The parts of a running service, built in dependency order by {@linkcode Service.start}. */
class Service {
  readonly #options: ServeOptions;
  readonly #resolver: SwappableResolver;
  readonly #resolverOptions: Omit<Parameters<typeof createResolver>[0], "servers">;
  readonly #cache: MxCache<Decision>;
  readonly #limit: ConnectionLimit;
  readonly #router: Router;
  readonly #metrics: RouterMetrics | null;
  readonly #servers: TableServer[] = [];
  #endpoints: Endpoint[] = [];
  #metricsServer: Deno.HttpServer | null = null;
  #stats: { stop(): void } | null = null;
  /** --cache-file, loaded before listening and saved on stop. */
  #cacheFile: CacheFile | null = null;
  /** systemd's Type=notify messages; does nothing without NOTIFY_SOCKET. */
  readonly #notifier = SystemdNotifier.fromEnvironment();
  #statusUpdates: { stop(): void } | null = null;
  #reloads = 0;
  #stopping = false;
  /** Settles when every listener has stopped. */
  serving: Promise<void> = Promise.resolve();

  private constructor(
    options: ServeOptions,
    parts: {
      ruleSet: RuleSet;
      dnsServers: DnsServer[];
      logSink: StderrSink;
      createMetrics: typeof createMetrics | null;
    },
  ) {
    this.#options = options;
    // Each source is read at scrape time, when every part exists.
    this.#metrics = parts.createMetrics?.({
      lookups: () => this.#router.countsByProvider,
      cache: () => ({ ...this.#cache.counters, entries: this.#cache.size }),
      connections: () => this.#openConnections(),
      refusedConnections: () => this.#limit.refused,
      evictedConnections: () => this.#limit.evicted,
      ruleSet: () => this.#router.ruleSet,
      version: VERSION,
      health: () =>
        healthVerdict({
          serving: !this.#stopping,
          dns: this.#resolver.current.serverStatus(),
          wallNow: Date.now(),
        }),
    }) ?? null;
    this.#resolverOptions = {
      timeoutMs: options.dnsTimeoutMs,
      transport: options.dnsTcp ? "tcp" : "udp",
      onQuery: (event: DnsQueryEvent) => this.#metrics?.observeDnsQuery(event),
      // One limit for the life of the process: a reload must not double the bound.
      inflight: new InflightLimit(options.maxDnsInflight),
    };
    this.#resolver = new SwappableResolver(
      createResolver({ ...this.#resolverOptions, servers: parts.dnsServers }),
    );
    this.#cache = new MxCache<Decision>({ resolver: this.#resolver, options: options.cache });
    this.#limit = new ConnectionLimit(options.maxConnections);
    const failures = failureLogger({
      sink: parts.logSink,
      failureTtl: options.cache.failureTtl,
      dryRun: options.dryRun,
    });
    const observers: LookupObserver[] = [
      lookupLogger({ sink: parts.logSink, modeTag: options.dryRun ? "dry-run " : "", failures }),
    ];
    if (this.#metrics !== null) observers.push(this.#metrics.lookupObserver);
    this.#router = new Router({
      cache: this.#cache,
      ruleSet: parts.ruleSet,
      observer: combineObservers(observers),
      dryRun: options.dryRun,
      onDecisionChange: (change) => {
        log.info`${decisionChangeText(change)}`;
        this.#metrics?.countDecisionChange(change);
      },
    });
  }

  /** Reads the rules and DNS servers, builds every part and opens every listener. */
  static async start(options: ServeOptions, logSink: StderrSink): Promise<Service> {
    const rules = await loadRuleSet(options.config, { matchMode: options.matchMode });
    if (!rules.ok) throw new StartupError(rules.error.map((e) => `fatal: ${e}`));
    for (const warning of rules.value.warnings) log.warning`${warning}`;
    const dnsServers = await loadDnsServers(options.dnsServers);
    if (!dnsServers.ok) throw new StartupError(dnsServers.error.map((e) => `fatal: ${e}`));
    // Loaded only when asked for: prom-client alone adds 16 MB to the process.
    const metricsModule = options.metrics === null ? null : await import("./metrics.ts");
    const built = new Service(options, {
      ruleSet: rules.value.ruleSet,
      dnsServers: dnsServers.value,
      logSink,
      createMetrics: metricsModule?.createMetrics ?? null,
    });
    // Known domains answer from the first lookup on, even with DNS down. Without a cache
    // (--cache-ttl 0) the file is neither read nor overwritten: it keeps what it holds.
    if (options.cacheFile !== null && options.cache.cacheTtl === 0) {
      log.warning`--cache-ttl 0 turns caching off: ${options.cacheFile} is neither read nor saved`;
    } else if (options.cacheFile !== null) {
      built.#cacheFile = await openCacheFile({
        path: options.cacheFile,
        cache: built.#cache,
        cacheSize: options.cache.cacheSize,
      });
    }
    // Every DNS server is probed while the listeners open; readiness waits for the answers.
    const probing = built.#probeDns();
    await built.#listen();
    built.#metricsServer = built.#startMetrics();
    const listening = built.#endpoints
      .map((e) => `${formatListenAddress(e.address)} (${e.codec.name})`)
      .join(", ");
    const dnsList = dnsServers.value.map(formatHostPort).join(", ") +
      (options.dnsTcp ? " over TCP" : "");
    const mode = options.dryRun ? 'dry-run (every answer is "not found"), ' : "";
    log.info`${mode}listening on ${listening}, ${
      plural(rules.value.ruleSet.rules.length, "rule")
    } from ${options.config}, DNS servers ${dnsList}, version ${VERSION}`;
    built.#stats = startStatsLog({
      cache: built.#cache,
      router: built.#router,
      limit: built.#limit,
    });
    built.serving = Promise.all(built.#servers.map((server) => server.serve())).then(() => {});
    await probing;
    built.#notifier.ready(built.#status());
    built.#statusUpdates = startStatusUpdates(built.#notifier, () => built.#status());
    return built;
  }

  /** Reloads, telling systemd RELOADING=1 before and READY=1 once the newest reload is done. */
  async reload(): Promise<void> {
    const reload = this.#reloads + 1;
    this.#notifier.reloading();
    try {
      await this.#reread();
    } finally {
      if (reload === this.#reloads) this.#notifier.ready(this.#status());
    }
  }

  /**
   * Probes every DNS server (`. NS`, at most {@linkcode PROBE_TIMEOUT_MS}); a server that does
   * not answer is logged as an error naming it and the fix. The router serves either way.
   */
  async #probeDns(): Promise<void> {
    const waitedMs = Math.min(PROBE_TIMEOUT_MS, this.#options.dnsTimeoutMs);
    for (const { server, host, result } of await this.#resolver.current.probeServers()) {
      if (result !== "silence") continue;
      const loopback = host.startsWith("127.") || host === "::1";
      const fix = loopback
        ? `start the resolver on ${server}`
        : `let this host reach ${server} (a firewall, or an IPAddressDeny= drop-in such as ` +
          `ip-restrict.conf: add IPAddressAllow=${host})`;
      log
        .error`DNS server ${server} does not answer: no reply within ${waitedMs} ms to a liveness probe (. NS); lookups it should answer get 400 (Postfix defers) until it does. Fix: ${fix}, or name a working server with --dns-server or in /etc/resolv.conf`;
    }
  }

  /** The STATUS= line systemctl status shows. */
  #status(): string {
    const counters = this.#cache.counters;
    return statusText({
      lookups: Object.values(this.#router.counts).reduce((sum, count) => sum + count, 0),
      cacheHits: counters.hits,
      cacheMisses: counters.misses,
      dnsFailures: counters.failures,
    });
  }

  /** Re-reads the rules (and /etc/resolv.conf unless --dns-server is given); keeps the old on error. */
  async #reread(): Promise<void> {
    const options = this.#options;
    // Two quick SIGHUPs: only the newest reload may install what it read.
    const reload = ++this.#reloads;
    const [reloaded, reread] = await Promise.all([
      loadRuleSet(options.config, { matchMode: options.matchMode }),
      options.dnsServers.length > 0 ? null : loadDnsServers([]),
    ]);
    if (reload !== this.#reloads) return;
    if (!reloaded.ok) {
      this.#metrics?.countReload("failure");
      for (const error of reloaded.error) {
        log.error`reload failed, keeping the old rules: ${error}`;
      }
    } else {
      const { ruleSet, warnings } = reloaded.value;
      for (const warning of warnings) log.warning`${warning}`;
      this.#router.ruleSet = ruleSet;
      this.#metrics?.countReload("success");
      log.info`reloaded ${plural(ruleSet.rules.length, "rule")} from ${options.config}`;
    }
    if (reread === null) return;
    if (!reread.ok) {
      log.error`reload: keeping the DNS servers: ${reread.error.join("; ")}`;
      return;
    }
    const replaced = this.#resolver.current;
    this.#resolver.current = createResolver({ ...this.#resolverOptions, servers: reread.value });
    // Its lookups under way finish on their sockets; then they close.
    replaced.close();
    log.info`reload: DNS servers ${reread.value.map(formatHostPort).join(", ")}`;
    await this.#probeDns();
  }

  /** Stops accepting, answers the requests already read (within a grace period), cleans up. */
  async stop(signal: string): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    const told = this.#notifier.stopping();
    this.#statusUpdates?.stop();
    log.info`${signal}: stopping; answering the requests already read`;
    await Promise.all(this.#servers.map((server) => server.stop(STOP_GRACE_MS)));
    for (const { address, socketFile } of this.#endpoints) {
      if (address.transport === "unix" && socketFile !== null) {
        await removeOwnSocket(address.path, socketFile);
      }
    }
    await this.#metricsServer?.shutdown();
    this.#stats?.stop();
    await this.#cacheFile?.close();
    // Let systemd-notify hand STOPPING=1 over before the process exits, within a second.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([told, new Promise((resolve) => timer = setTimeout(resolve, 1000))]);
    clearTimeout(timer);
    log.info`stopped`;
  }

  #openConnections(): Record<string, number> {
    const open: Record<string, number> = { tcp_table: 0, socketmap: 0 };
    for (const server of this.#servers) open[server.protocol] += server.connections;
    return open;
  }

  /** Opens every listener the options ask for; a failure names the address. */
  async #listen(): Promise<void> {
    const options = this.#options;
    const wanted: { address: ListenAddress; codec: ProtocolCodec }[] = [];
    if (options.port !== 0) {
      wanted.push({
        address: { transport: "tcp", host: options.host, port: options.port },
        codec: tcpTableCodec,
      });
    }
    for (const address of options.socketmap) wanted.push({ address, codec: socketmapCodec });
    let gid: number | null = null;
    if (options.socketGroup !== null) {
      const groups = await Deno.readTextFile("/etc/group").catch(() => "");
      gid = groupId(groups, options.socketGroup);
      if (gid === null) {
        throw new StartupError([
          `fatal: option '--socket-group': no group "${options.socketGroup}"`,
        ]);
      }
    }
    for (const { address, codec } of wanted) {
      try {
        const { listener, socketFile } = await openListener(address, {
          mode: options.socketMode,
          gid,
        });
        this.#endpoints.push({ address, codec, listener, socketFile });
      } catch (error) {
        const why = errorMessage(error);
        throw new StartupError([`fatal: cannot listen on ${formatListenAddress(address)}: ${why}`]);
      }
    }
    for (const { listener, codec } of this.#endpoints) {
      this.#servers.push(
        new TableServer({
          listener,
          codec,
          router: this.#router,
          idleTimeoutMs: options.idleTimeoutMs,
          stuckTimeoutMs: options.dnsTimeoutMs + REQUEST_TIMEOUT_MS,
          limit: this.#limit,
        }),
      );
    }
  }

  #startMetrics(): Deno.HttpServer | null {
    const address = this.#options.metrics;
    if (this.#metrics === null || address === null) return null;
    const where = formatHostPort(address);
    try {
      const server = this.#metrics.serve({ hostname: address.host, port: address.port });
      log.info`metrics at http://${where}/metrics`;
      return server;
    } catch (error) {
      throw new StartupError([
        `fatal: cannot listen on ${where} for metrics: ${errorMessage(error)}`,
      ]);
    }
  }
}

/** The resolver in force; replaced when a reload re-reads /etc/resolv.conf. */
class SwappableResolver implements MxResolver {
  current: DnsResolver;
  constructor(resolver: DnsResolver) {
    this.current = resolver;
  }
  resolveMx(domain: string): Promise<MxOutcome> {
    return this.current.resolveMx(domain);
  }
}
