/**
 * postfix-mx-pattern-router: a Postfix tcp_table that routes recipients by their domain's MX
 * hosts. This file only wires the parts together; see lib/.
 *
 * @module
 */

import { errorMessage } from "./lib/common/errors.ts";
import { MxCache } from "./lib/routing/cache.ts";
import { runCheck } from "./lib/app/check.ts";
import {
  cacheOptionsOf,
  HELP,
  parseCommandLine,
  PROGRAM,
  type ServeOptions,
  USAGE,
  VERSION,
} from "./lib/app/cli.ts";
import { runQuery } from "./lib/app/query.ts";
import { createResolver, type DnsQueryEvent, type DnsResolver } from "./lib/dns/resolver.ts";
import { Limiter } from "./lib/dns/limiter.ts";
import { formatHostPort } from "./lib/dns/servers.ts";
import type { MxOutcome, MxResolver } from "./lib/dns/types.ts";
import type { RouterMetrics } from "./lib/app/metrics.ts";
import { failureLogger, log, lookupLogger, setupLogging, writeFatal } from "./lib/common/log.ts";
import { combineObservers, type Decision, Router } from "./lib/routing/router.ts";
import { formatProviderCatalog } from "./lib/routing/providers.ts";
import type { ProtocolCodec } from "./lib/server/codec.ts";
import {
  formatListenAddress,
  groupId,
  type ListenAddress,
  openListener,
  parseListenAddress,
  removeOwnSocket,
} from "./lib/server/listen.ts";
import { ConnectionLimit } from "./lib/server/connection_limit.ts";
import { REQUEST_TIMEOUT_MS, TableServer } from "./lib/server/server.ts";
import { socketmapCodec } from "./lib/server/socketmap.ts";
import { loadDnsServers, loadRuleSet } from "./lib/app/load.ts";
import { startStatsLog } from "./lib/app/stats.ts";
import { tcpTableCodec } from "./lib/server/tcp_table.ts";

/** Requests already read get this long to be answered on SIGTERM. */
const STOP_GRACE_MS = 5000;

function fail(lines: string[], code: number): never {
  writeFatal(lines.map((line) => `${PROGRAM}: ${line}`));
  Deno.exit(code);
}

async function serve(options: ServeOptions): Promise<void> {
  // A SIGHUP before the reload handler below is in place (`systemctl reload` right after start)
  // would kill the process by default: note it, and reload once serving.
  let reloadAsked = false;
  const noteReload = () => reloadAsked = true;
  Deno.addSignalListener("SIGHUP", noteReload);
  const logSink = setupLogging({
    verbosity: options.verbosity,
    journal: Deno.env.get("JOURNAL_STREAM") !== undefined,
  });
  const rules = await loadRuleSet(options.config, { matchMode: options.matchMode });
  if (!rules.ok) fail(rules.errors.map((e) => `fatal: ${e}`), 1);
  for (const warning of rules.warnings) log.warning`${warning}`;
  const dnsServers = await loadDnsServers(options.dnsServers);
  if (!dnsServers.ok) fail(dnsServers.errors.map((e) => `fatal: ${e}`), 1);

  let metrics: RouterMetrics | null = null;
  const onQuery = (event: DnsQueryEvent) => metrics?.observeDnsQuery(event);
  const resolverOptions = {
    timeoutMs: options.dnsTimeoutMs,
    transport: options.dnsTcp ? "tcp" as const : "udp" as const,
    onQuery,
    // One limiter for the life of the process: a reload must not double the bound.
    limiter: new Limiter(options.maxDnsInflight),
  };
  const resolver = new SwappableResolver(
    createResolver({ ...resolverOptions, servers: dnsServers.value }),
  );
  const cache = new MxCache<Decision>({
    resolver,
    options: cacheOptionsOf(options),
  });
  const limit = new ConnectionLimit(options.maxConnections);
  const servers: TableServer[] = [];
  const failures = failureLogger({
    sink: logSink,
    failureTtl: cacheOptionsOf(options).failureTtl,
    dryRun: options.dryRun,
  });
  const observers = [
    lookupLogger({ sink: logSink, modeTag: options.dryRun ? "dry-run " : "", failures }),
  ];
  if (options.metrics !== null) {
    // Loaded only when asked for: prom-client alone adds 16 MB to the process.
    const { createMetrics } = await import("./lib/app/metrics.ts");
    metrics = createMetrics({
      lookups: () => router.counts,
      cache: () => ({ ...cache.counters, entries: cache.size }),
      connections: () => {
        const open: Record<string, number> = { tcp_table: 0, socketmap: 0 };
        for (const server of servers) open[server.protocol] += server.connections;
        return open;
      },
      refusedConnections: () => limit.refused,
      evictedConnections: () => limit.evicted,
      ruleSet: () => router.ruleSet,
      version: VERSION,
    });
    observers.push(metrics.lookupObserver);
  }
  const router = new Router({
    cache,
    ruleSet: rules.value,
    observer: combineObservers(observers),
    dryRun: options.dryRun,
  });

  const endpoints = await listenAll(options);
  for (const { listener, codec } of endpoints) {
    servers.push(
      new TableServer({
        listener,
        codec,
        router,
        idleTimeoutMs: options.idleTimeoutMs,
        stuckTimeoutMs: options.dnsTimeoutMs + REQUEST_TIMEOUT_MS,
        limit,
      }),
    );
  }
  const metricsServer = metrics === null ? null : startMetrics(options, metrics);
  const listening = endpoints.map((e) => `${formatListenAddress(e.address)} (${e.codec.name})`);
  const dnsList = dnsServers.value.map(formatHostPort).join(", ") +
    (options.dnsTcp ? " over TCP" : "");
  const mode = options.dryRun ? 'dry-run (every answer is "not found"), ' : "";
  log.info`${mode}listening on ${
    listening.join(", ")
  }, ${rules.value.rules.length} rules from ${options.config}, DNS servers ${dnsList}, version ${VERSION}`;

  const stats = startStatsLog({ cache, router, limit });
  let reloads = 0;
  const reload = async () => {
    // Two quick SIGHUPs: only the newest reload may install what it read.
    const reload = ++reloads;
    const [reloaded, reread] = await Promise.all([
      loadRuleSet(options.config, { matchMode: options.matchMode }),
      options.dnsServers.length > 0 ? null : loadDnsServers([]),
    ]);
    if (reload !== reloads) return;
    if (!reloaded.ok) {
      metrics?.countReload("failure");
      for (const error of reloaded.errors) {
        log.error`reload failed, keeping the old rules: ${error}`;
      }
    } else {
      for (const warning of reloaded.warnings) log.warning`${warning}`;
      router.ruleSet = reloaded.value;
      metrics?.countReload("success");
      log.info`reloaded ${reloaded.value.rules.length} rules from ${options.config}`;
    }
    if (reread === null) return;
    if (!reread.ok) {
      log.error`reload: keeping the DNS servers: ${reread.errors.join("; ")}`;
      return;
    }
    const replaced = resolver.current;
    resolver.current = createResolver({ ...resolverOptions, servers: reread.value });
    // Its lookups under way finish on their sockets; then they close.
    replaced.close();
    log.info`reload: DNS servers ${reread.value.map(formatHostPort).join(", ")}`;
  };
  Deno.addSignalListener("SIGHUP", reload);
  Deno.removeSignalListener("SIGHUP", noteReload);
  if (reloadAsked) reload();
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info`${signal}: stopping; answering the requests already read`;
    await Promise.all(servers.map((server) => server.stop(STOP_GRACE_MS)));
    for (const { address, socketFile } of endpoints) {
      if (address.transport === "unix" && socketFile !== null) {
        await removeOwnSocket(address.path, socketFile);
      }
    }
    await metricsServer?.shutdown();
    stats.stop();
    log.info`stopped`;
    logSink.flush();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  await Promise.all(servers.map((server) => server.serve()));
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

interface Endpoint {
  address: ListenAddress;
  codec: ProtocolCodec;
  listener: Deno.Listener;
  /** Which unix socket file is ours (removed at stop only if still there); null for TCP. */
  socketFile: string | null;
}

/** Opens every listener the options ask for, or exits with a message naming the address. */
async function listenAll(options: ServeOptions): Promise<Endpoint[]> {
  const wanted: { address: ListenAddress; codec: ProtocolCodec }[] = [];
  if (options.port !== 0) {
    wanted.push({
      address: { transport: "tcp", host: options.host, port: options.port },
      codec: tcpTableCodec,
    });
  }
  for (const text of options.socketmap) {
    const address = parseListenAddress(text);
    if ("error" in address) fail([`option '--socketmap' ${address.error}`], 2);
    wanted.push({ address, codec: socketmapCodec });
  }
  const seen = new Set<string>();
  for (const { address } of wanted) {
    // A second listener on the same unix path would find our own first one "in use".
    const text = formatListenAddress(address);
    if (seen.has(text)) fail([`${text} is given twice: each address serves one protocol`], 2);
    seen.add(text);
  }
  let gid: number | null = null;
  if (options.socketGroup !== null) {
    const groups = await Deno.readTextFile("/etc/group").catch(() => "");
    gid = groupId(groups, options.socketGroup);
    if (gid === null) {
      fail([`fatal: option '--socket-group': no group "${options.socketGroup}"`], 1);
    }
  }
  const endpoints: Endpoint[] = [];
  for (const { address, codec } of wanted) {
    try {
      const { listener, socketFile } = await openListener(address, {
        mode: options.socketMode,
        gid,
      });
      endpoints.push({ address, codec, listener, socketFile });
    } catch (error) {
      const why = errorMessage(error);
      fail([`fatal: cannot listen on ${formatListenAddress(address)}: ${why}`], 1);
    }
  }
  return endpoints;
}

function startMetrics(options: ServeOptions, metrics: RouterMetrics): Deno.HttpServer {
  const address = parseListenAddress(options.metrics ?? "");
  if ("error" in address || address.transport !== "tcp") {
    fail([`option '--metrics' needs HOST:PORT, not '${options.metrics}'`], 2);
  }
  try {
    const server = metrics.serve({ hostname: address.host, port: address.port });
    log.info`metrics at http://${formatListenAddress(address)}/metrics`;
    return server;
  } catch (error) {
    fail([`fatal: cannot listen on ${options.metrics} for metrics: ${error}`], 1);
  }
}

if (import.meta.main) {
  const command = parseCommandLine(Deno.args);
  switch (command.kind) {
    case "help":
      console.log(HELP);
      break;
    case "version":
      console.log(`${PROGRAM} ${VERSION}`);
      break;
    case "error":
      writeFatal([`${PROGRAM}: ${command.message}`, ...USAGE.split("\n")]);
      Deno.exit(2);
      break;
    case "serve":
      await serve(command.options);
      break;
    case "check":
      Deno.exit(await runCheck(command.options));
      break;
    case "query":
      Deno.exit(await runQuery(command.options));
      break;
    case "providers":
      console.log(formatProviderCatalog().join("\n"));
      break;
  }
}
