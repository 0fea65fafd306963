/**
 * postfix-mx-pattern-router: a Postfix tcp_table that routes recipients by their domain's MX
 * hosts. This file only wires the parts together; see lib/.
 *
 * @module
 */

import { MxCache } from "./lib/cache.ts";
import { HELP, parseCommandLine, PROGRAM, type ServeOptions, USAGE, VERSION } from "./lib/cli.ts";
import { createResolver } from "./lib/dns.ts";
import { log, lookupLogger, setupLogging } from "./lib/log.ts";
import { type Memo, Router } from "./lib/router.ts";
import { type ConnectionLimit, TableServer } from "./lib/server.ts";
import { formatDnsServer, loadDnsServers, loadRuleSet } from "./lib/setup.ts";
import { startStatsLog } from "./lib/stats.ts";
import { tcpTableCodec } from "./lib/tcp_table.ts";

/** Requests already read get this long to be answered on SIGTERM. */
const STOP_GRACE_MS = 5000;

function fail(lines: string[], code: number): never {
  for (const line of lines) console.error(`${PROGRAM}: ${line}`);
  Deno.exit(code);
}

async function serve(options: ServeOptions): Promise<void> {
  const flushLog = setupLogging({
    verbosity: options.verbosity,
    journal: Deno.env.get("JOURNAL_STREAM") !== undefined,
  });
  const rules = await loadRuleSet(options.config);
  if (!rules.ok) fail(["fatal: " + rules.errors.join(`\n${PROGRAM}: fatal: `)], 1);
  const servers = await loadDnsServers(options.dnsServers);
  if (!servers.ok) fail(servers.errors.map((e) => `fatal: ${e}`), 1);

  const resolver = createResolver({ servers: servers.value, timeoutMs: options.dnsTimeoutMs });
  const cache = new MxCache<Memo>({
    resolver,
    options: {
      maxTtl: options.cacheTtl,
      minTtl: options.minTtl,
      negativeTtl: options.negativeTtl,
      failureTtl: options.failureTtl,
      staleTtl: options.staleTtl,
      staleAnswerMs: options.staleAnswerMs,
      maxEntries: options.cacheSize,
    },
  });
  const router = new Router({ cache, ruleSet: rules.value, observer: lookupLogger("") });
  const limit: ConnectionLimit = { open: 0, max: options.maxConnections, refused: 0 };

  let listener: Deno.Listener;
  try {
    listener = Deno.listen({ hostname: options.host, port: options.port });
  } catch (error) {
    fail([`fatal: cannot listen on ${options.host}:${options.port}: ${error}`], 1);
  }
  const server = new TableServer({
    listener,
    codec: tcpTableCodec,
    router,
    idleTimeoutMs: options.idleTimeoutMs,
    limit,
  });
  log
    .info`listening on ${options.host}:${options.port} (tcp_table), ${rules.value.rules.length} rules from ${options.config}, DNS servers ${
    servers.value.map(formatDnsServer).join(", ")
  }, version ${VERSION}`;

  const stats = startStatsLog({ cache, router, limit });
  Deno.addSignalListener("SIGHUP", async () => {
    const reloaded = await loadRuleSet(options.config);
    if (!reloaded.ok) {
      for (const error of reloaded.errors) {
        log.error`reload failed, keeping the old rules: ${error}`;
      }
      return;
    }
    router.ruleSet = reloaded.value;
    log.info`reloaded ${reloaded.value.rules.length} rules from ${options.config}`;
  });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info`${signal}: stopping; answering the requests already read`;
    await server.stop(STOP_GRACE_MS);
    stats.stop();
    log.info`stopped`;
    flushLog();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  await server.serve();
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
      console.error(`${PROGRAM}: ${command.message}\n${USAGE}`);
      Deno.exit(2);
      break;
    case "serve":
      await serve(command.options);
      break;
  }
}
