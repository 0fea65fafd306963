/**
 * The end-to-end environment of issue 4: real DNS (dnsmasq) serving a test zone, a fake upstream
 * for the names that must fail, the router as a separate process with the compile task's
 * permissions, and (when asked) a private Postfix instance routing through the router to two
 * smtp-sinks. Everything runs on free loopback ports under one temporary directory and is stopped
 * by PID when the test ends, passed or failed.
 *
 * ```
 * smtp-source / sendmail ─► Postfix ─tcp:─► router ─DNS─► dnsmasq ─(broken.test)─► fake DNS
 *                              │
 *                              ├─ relay:[127.0.0.1]:RELAY ───► smtp-sink "relay"
 *                              └─ default_transport ─────────► smtp-sink "default"
 * ```
 *
 * Tests are declared with {@linkcode e2eTest}: when Postfix or dnsmasq is missing, they are skipped
 * with a message saying how to enable them, or fail when `CI=true`.
 *
 * @module
 */

import { startDnsmasq } from "./dnsmasq.ts";
import type { Dnsmasq, DnsmasqZone, MxRecord } from "./dnsmasq.ts";
import { startFakeDns } from "./fake_dns.ts";
import type { FakeDns } from "./fake_dns.ts";
import { postmapQuery, startPostfix, startSmtpSink, writePostmapConfig } from "./postfix.ts";
import type { PostfixInstance, PostmapResult, SmtpSink } from "./postfix.ts";
import { startRouter } from "./router_process.ts";
import type { RouterProcess } from "./router_process.ts";
import { findBinary, freePort, LOOPBACK, runAll, waitFor } from "./e2e_util.ts";

/** The domains of the test zone, one per DNS outcome class. */
export const DOMAINS = {
  /** MX at Microsoft 365 (`suffix:mail.protection.outlook.com` rule): 200 relay. */
  microsoft: "contoso.test",
  /** MX at Google (no rule): 500, default transport. */
  google: "google-hosted.test",
  /** MX at iCloud (`/regex/` rule whose result lists two next hops, with a space): 200. */
  icloud: "icloud-hosted.test",
  /** MX 20 at Microsoft, MX 10 at iCloud: the lowest preference decides (the iCloud result). */
  preference: "preference.test",
  /** A lookalike MX `...mail.protection.outlook.com.attacker.test`: the suffix rule must not match. */
  lookalike: "lookalike.test",
  /** MX at a Proofpoint-like host, matched by a plain substring rule: 200 relay. */
  substring: "proofpoint-hosted.test",
  /** A null MX (RFC 7505): 500. */
  nullMx: "nullmx.test",
  /** An address but no MX (NODATA), no rule for the name: 500. */
  noMx: "nomx.test",
  /** An address but no MX, and an `exact:` rule for the name itself (implicit MX): 200 relay. */
  implicitMx: "implicit-mx.test",
  /** An address but no MX, a name holding the substring rule's text: never matched, 500. */
  substringNoMx: "fanpphosted.com.test",
  /** A single-label domain with MX at Microsoft: looked up like any other, 200 relay. */
  singleLabel: "singlelabel",
  /** MX at Microsoft, but a `domain:` rule answers DUNNO: 500, without DNS. */
  domainDunno: "dunno-override.test",
  /** A subdomain under a `domain:.NAME` rule, no DNS record at all: 200 from the rule. */
  domainRule: "mail.override.test",
  /** Does not exist: 500. */
  nxDomain: "does-not-exist.test",
  /** The upstream answers SERVFAIL: 400. */
  servfail: "servfail.broken.test",
  /** The upstream never answers: 400 after --dns-timeout. */
  silent: "silent.broken.test",
  /** SERVFAIL until the test calls {@linkcode E2eEnv.fixFlaky}, then an MX at Microsoft. */
  flaky: "flaky.broken.test",
} as const;

/** The name of a domain class in {@linkcode DOMAINS}. */
export type DomainClass = keyof typeof DOMAINS;

/** The domain forwarded by dnsmasq to the fake upstream. */
export const BROKEN_ZONE = "broken.test";

/** The MX host the flaky domain gets once fixed. */
export const FLAKY_FIXED_MX = "flaky-test.mail.protection.outlook.com";

/** What the router must answer for a key. */
export type Expected =
  | { code: 200; value: string }
  | { code: 500 }
  | { code: 400 };

/** Options for {@linkcode startE2eEnv} and {@linkcode e2eTest}. */
export interface E2eOptions {
  /** Start a private Postfix instance and the two sinks. Default false (postmap only). */
  postfix?: boolean;
  /**
   * Extra generated domains per class for bulk tests (see {@linkcode E2eEnv.bulkDomains}).
   * Default 0.
   */
  bulkDomainsPerClass?: number;
  /** Extra router arguments; a function gets the environment's temporary directory. */
  routerArgs?: string[] | ((tmp: string) => string[]);
  /** The router's --dns-timeout in seconds. Default 1. */
  dnsTimeoutSeconds?: number;
}

/** A generated domain for bulk tests, with its class. */
export interface BulkDomain {
  /** The domain name. */
  domain: string;
  /** Which class it behaves like. */
  kind: "microsoft" | "google" | "icloud" | "nullMx" | "noMx" | "nxDomain";
}

/** A running environment. */
export interface E2eEnv {
  /** The temporary directory everything lives in. */
  readonly tmp: string;
  /** dnsmasq. */
  readonly dns: Dnsmasq;
  /** The fake upstream serving {@linkcode BROKEN_ZONE}. */
  readonly upstream: FakeDns;
  /** The router (replaced by {@linkcode E2eEnv.restartRouter}). */
  readonly router: RouterProcess;
  /** The rules file. */
  readonly configPath: string;
  /** A directory with a main.cf for postmap (the Postfix instance's when there is one). */
  readonly postmapConfigDir: string;
  /** The port the relay rules point at (the relay sink's, when Postfix runs). */
  readonly relayPort: number;
  /** The private Postfix instance, when asked for. */
  readonly postfix: PostfixInstance | null;
  /** The sink the rules route to, when Postfix runs. */
  readonly relaySink: SmtpSink | null;
  /** The sink of default_transport, when Postfix runs. */
  readonly defaultSink: SmtpSink | null;
  /** Generated bulk domains. */
  readonly bulkDomains: BulkDomain[];
  /** The rule result routing to the relay sink. */
  readonly relayResult: string;
  /** The rule result for iCloud MX: two next hops separated by ", " (encoded on the wire). */
  readonly relayPairResult: string;
  /** What the router must answer for a domain of the zone (keys of any form). */
  expected(domain: string): Expected;
  /** `postmap -q KEY tcp:...` against the router. */
  postmap(key: string): Promise<PostmapResult>;
  /** Makes the fake upstream answer the flaky domain with an MX at Microsoft. */
  fixFlaky(): void;
  /** Stops the router (by PID) and starts a new one on the same port; returns the new one. */
  restartRouter(): Promise<RouterProcess>;
  /** Logs worth reading when a test fails. */
  diagnostics(): Promise<string>;
  /** Stops everything, by PID, and removes the temporary directory (unless E2E_KEEP=1). */
  close(): Promise<void>;
}

/** The programs the end-to-end tests run, and the Debian package of each. */
export const REQUIRED_TOOLS: ReadonlyArray<{ name: string; pkg: string; postfixOnly: boolean }> = [
  { name: "dnsmasq", pkg: "dnsmasq-base", postfixOnly: false },
  { name: "postmap", pkg: "postfix", postfixOnly: false },
  { name: "postfix", pkg: "postfix", postfixOnly: true },
  { name: "postqueue", pkg: "postfix", postfixOnly: true },
  { name: "sendmail", pkg: "postfix", postfixOnly: true },
  { name: "smtp-sink", pkg: "postfix", postfixOnly: true },
  { name: "smtp-source", pkg: "postfix", postfixOnly: true },
];

/** Why the environment cannot run here (missing programs, not root), or [] when it can. */
export function missingRequirements(options: E2eOptions = {}): string[] {
  const missing: string[] = [];
  const packages = new Set<string>();
  for (const tool of REQUIRED_TOOLS) {
    if (tool.postfixOnly && !options.postfix) continue;
    if (findBinary(tool.name) === null) {
      missing.push(tool.name);
      packages.add(tool.pkg);
    }
  }
  const problems = missing.length === 0
    ? []
    : [`missing ${missing.join(", ")} (Debian package ${[...packages].join(", ")})`];
  if (options.postfix && Deno.uid() !== 0) {
    problems.push("a private Postfix instance needs root (its daemons switch to user postfix)");
  }
  return problems;
}

/** Whether this is a CI run, where a missing tool must fail instead of skipping. */
export function isCi(): boolean {
  return /^(true|1|yes)$/i.test(Deno.env.get("CI") ?? "");
}

let skipNoticePrinted = false;

/**
 * Declares an end-to-end test. The environment is started before `fn` and closed after it, even
 * when it throws; on failure the logs of dnsmasq, the router and Postfix are printed.
 *
 * When a required program is missing the test is skipped (ignored) with a notice on how to enable
 * it; with `CI=true` it fails instead, naming the package to install.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * e2eTest("a Microsoft-MX domain routes to the relay", {}, async (env) => {
 *   const reply = await env.postmap(`a@${DOMAINS.microsoft}`);
 *   assert.equal(reply.value, env.relayResult);
 * });
 * ```
 */
export function e2eTest(
  name: string,
  options: E2eOptions,
  fn: (env: E2eEnv, t: Deno.TestContext) => Promise<void>,
): void {
  const problems = missingRequirements(options);
  if (problems.length > 0) {
    const how = "to run them: apt-get install postfix dnsmasq-base (as root)";
    if (isCi()) {
      Deno.test(`e2e: ${name}`, () => {
        throw new Error(
          `CI=true and the end-to-end test cannot run: ${problems.join("; ")}; ${how}`,
        );
      });
      return;
    }
    if (!skipNoticePrinted) {
      skipNoticePrinted = true;
      console.log(
        `%cend-to-end tests skipped: ${problems.join("; ")}; ${how}. ` +
          "With CI=true this is an error.",
        "color: yellow",
      );
    }
    Deno.test({ name: `e2e: ${name}`, ignore: true, fn: () => {} });
    return;
  }
  Deno.test({
    name: `e2e: ${name}`,
    async fn(t) {
      const env = await startE2eEnv(options);
      // A failed step does not throw: track steps to print the logs for those failures too.
      let stepFailed = false;
      const step = t.step.bind(t) as (...args: unknown[]) => Promise<boolean>;
      const tracked: Deno.TestContext = Object.create(t, {
        step: {
          value: async (...args: unknown[]) => {
            const ok = await step(...args);
            if (!ok) stepFailed = true;
            return ok;
          },
        },
      });
      try {
        await fn(env, tracked);
        if (stepFailed) console.error(await env.diagnostics());
      } catch (error) {
        console.error(await env.diagnostics());
        throw error;
      } finally {
        await env.close();
      }
    },
  });
}

/** The mail parts of an environment started with `postfix: true`. */
export interface MailParts {
  /** The private Postfix instance. */
  postfix: PostfixInstance;
  /** The sink the rules route to. */
  relaySink: SmtpSink;
  /** The sink of default_transport. */
  defaultSink: SmtpSink;
}

/** The Postfix instance and sinks of `env`; throws when it was started without `postfix: true`. */
export function mailParts(env: E2eEnv): MailParts {
  const { postfix, relaySink, defaultSink } = env;
  if (postfix === null || relaySink === null || defaultSink === null) {
    throw new Error("this environment has no Postfix: declare the test with { postfix: true }");
  }
  return { postfix, relaySink, defaultSink };
}

/**
 * Steps that depend on each other: after the first failing step, the rest are reported as ignored
 * instead of running (and waiting for timeouts) on a broken state.
 *
 * @example
 * ```ts
 * declare const t: Deno.TestContext;
 * declare function queueMail(): Promise<void>;
 * declare function flushAndCheck(): Promise<void>;
 * const step = sequence(t);
 * await step("mail is queued", queueMail);
 * await step("the flush delivers it", flushAndCheck); // ignored if the first failed
 * ```
 */
export function sequence(
  t: Deno.TestContext,
): (name: string, fn: () => Promise<void>) => Promise<boolean> {
  let failed = false;
  return async (name, fn) => {
    if (failed) {
      await t.step({ name: `${name} (not run: an earlier step failed)`, ignore: true, fn });
      return false;
    }
    const ok = await t.step(name, fn);
    if (!ok) failed = true;
    return ok;
  };
}

/** Rules, one per pattern kind; `R` routes to the relay sink. */
function rulesFile(relay: string, relayPair: string): string {
  return [
    "# generated by tests/support/e2e_env.ts: one rule per pattern kind",
    `suffix:mail.protection.outlook.com ${relay}`,
    `/^mx[0-9]+\\.mail\\.icloud\\.com$/ ${relayPair}`,
    `pphosted.com ${relay}`,
    `exact:${DOMAINS.implicitMx} ${relay}`,
    `domain:${DOMAINS.domainDunno} DUNNO`,
    `domain:.${DOMAINS.domainRule.split(".").slice(1).join(".")} ${relay}`,
    "",
  ].join("\n");
}

/** The MX records of the named classes. */
const ZONE_MX: MxRecord[] = [
  { domain: DOMAINS.microsoft, host: "contoso-test.mail.protection.outlook.com", preference: 0 },
  { domain: DOMAINS.google, host: "aspmx.l.google.com", preference: 1 },
  { domain: DOMAINS.google, host: "alt1.aspmx.l.google.com", preference: 5 },
  { domain: DOMAINS.google, host: "alt2.aspmx.l.google.com", preference: 5 },
  { domain: DOMAINS.icloud, host: "mx01.mail.icloud.com", preference: 10 },
  { domain: DOMAINS.icloud, host: "mx02.mail.icloud.com", preference: 10 },
  {
    domain: DOMAINS.preference,
    host: "preference-test.mail.protection.outlook.com",
    preference: 20,
  },
  { domain: DOMAINS.preference, host: "mx01.mail.icloud.com", preference: 10 },
  {
    domain: DOMAINS.lookalike,
    host: "contoso-test.mail.protection.outlook.com.attacker.test",
    preference: 10,
  },
  { domain: DOMAINS.substring, host: "mx0a-00123456.pphosted.com", preference: 10 },
  { domain: DOMAINS.singleLabel, host: "singlelabel.mail.protection.outlook.com", preference: 10 },
  { domain: DOMAINS.domainDunno, host: "dunno.mail.protection.outlook.com", preference: 10 },
];

function bulkDomainList(perClass: number): BulkDomain[] {
  const kinds: BulkDomain["kind"][] = [
    "microsoft",
    "google",
    "icloud",
    "nullMx",
    "noMx",
    "nxDomain",
  ];
  const list: BulkDomain[] = [];
  for (let i = 0; i < perClass; i++) {
    for (const kind of kinds) list.push({ domain: `bulk-${kind.toLowerCase()}-${i}.test`, kind });
  }
  return list;
}

function zoneFor(bulk: BulkDomain[], upstreamPort: number): DnsmasqZone {
  const mx = [...ZONE_MX];
  const nullMx: string[] = [DOMAINS.nullMx];
  const addresses: Array<{ name: string; ipv4: string }> = [
    { name: DOMAINS.noMx, ipv4: "127.0.0.1" },
    { name: DOMAINS.implicitMx, ipv4: "127.0.0.1" },
    { name: DOMAINS.substringNoMx, ipv4: "127.0.0.1" },
  ];
  for (const { domain, kind } of bulk) {
    switch (kind) {
      case "microsoft":
        mx.push({
          domain,
          host: `${domain.replaceAll(".", "-")}.mail.protection.outlook.com`,
          preference: 0,
        });
        break;
      case "google":
        mx.push({ domain, host: "aspmx.l.google.com", preference: 1 });
        break;
      case "icloud":
        mx.push({ domain, host: "mx01.mail.icloud.com", preference: 10 });
        break;
      case "nullMx":
        nullMx.push(domain);
        break;
      case "noMx":
        addresses.push({ name: domain, ipv4: "127.0.0.1" });
        break;
      case "nxDomain":
        break;
    }
  }
  return {
    localDomains: ["test"],
    mx,
    nullMx,
    addresses,
    forwards: [{ domain: BROKEN_ZONE, port: upstreamPort }],
    localTtl: 60,
  };
}

/** Extracts the domain of a key as the router does for the keys the tests use. */
function domainOfKey(key: string): string {
  const at = key.lastIndexOf("@");
  return (at >= 0 ? key.slice(at + 1) : key).toLowerCase().replace(/\.$/, "");
}

/**
 * Starts the environment. Prefer {@linkcode e2eTest}, which also closes it.
 */
export async function startE2eEnv(options: E2eOptions = {}): Promise<E2eEnv> {
  const tmp = await Deno.makeTempDir({ prefix: "mx-router-e2e-" });
  // Postfix daemons and smtp-sink run as user postfix: they must traverse it.
  await Deno.chmod(tmp, 0o755);
  const cleanups: Array<() => Promise<unknown> | unknown> = [];
  const close = async () => {
    await runAll([
      ...cleanups.reverse(),
      () => Deno.env.get("E2E_KEEP") === "1" ? undefined : Deno.remove(tmp, { recursive: true }),
    ]);
  };
  try {
    const upstream = await startFakeDns({
      zone: {
        [DOMAINS.servfail]: { kind: "servfail" },
        [DOMAINS.silent]: { kind: "silence" },
        [DOMAINS.flaky]: { kind: "servfail" },
      },
    });
    cleanups.push(() => upstream.stop());

    const bulkDomains = bulkDomainList(options.bulkDomainsPerClass ?? 0);
    const dns = await startDnsmasq({ dir: tmp, zone: zoneFor(bulkDomains, upstream.port) });
    cleanups.push(() => dns.stop());

    let relaySink: SmtpSink | null = null;
    let defaultSink: SmtpSink | null = null;
    if (options.postfix) {
      relaySink = await startSmtpSink({ dir: `${tmp}/sink-relay`, name: "relay" });
      cleanups.push(() => relaySink?.stop());
      defaultSink = await startSmtpSink({ dir: `${tmp}/sink-default`, name: "default" });
      cleanups.push(() => defaultSink?.stop());
    }
    const relayPort = relaySink?.port ?? await freePort();
    const relayResult = `relay:[${LOOPBACK}]:${relayPort}`;
    const relayPairResult = `relay:[${LOOPBACK}]:${relayPort}, [${LOOPBACK}]:${relayPort}`;
    const configPath = `${tmp}/postfix-mx-pattern-router.conf`;
    await Deno.writeTextFile(configPath, rulesFile(relayResult, relayPairResult));

    const routerOptions = {
      configPath,
      tmpDir: tmp,
      dnsServers: [dns.address],
      dnsTimeoutSeconds: options.dnsTimeoutSeconds ?? 1,
      // E2E_VERBOSE=1 logs every lookup (debug), for reading failures.
      args: [
        ...(Deno.env.get("E2E_VERBOSE") === "1" ? ["-v"] : []),
        ...(typeof options.routerArgs === "function"
          ? options.routerArgs(tmp)
          : options.routerArgs ?? []),
      ],
      // A fresh machine may still be filling Deno's module cache.
      startTimeoutMs: 60_000,
    };
    let router = await startRouter(routerOptions);
    let routerLogs = "";
    cleanups.push(() => router.stop());

    let postfix: PostfixInstance | null = null;
    if (options.postfix && defaultSink !== null) {
      postfix = await startPostfix({
        dir: `${tmp}/postfix`,
        transportMaps: router.table,
        defaultTransport: `smtp:[${LOOPBACK}]:${defaultSink.port}`,
      });
      const instance = postfix;
      cleanups.push(() => instance.stop());
    }
    const postmapConfigDir = postfix?.configDir ?? await writePostmapConfig(`${tmp}/postmap`);

    const bulkKinds = new Map(bulkDomains.map((b) => [b.domain, b.kind]));
    const expectedFor = (kind: string): Expected => {
      switch (kind) {
        case "microsoft":
        case "substring":
        case "implicitMx":
        case "singleLabel":
        case "domainRule":
          return { code: 200, value: relayResult };
        case "icloud":
        case "preference":
          return { code: 200, value: relayPairResult };
        case "servfail":
        case "silent":
        case "flaky":
          return { code: 400 };
        default:
          return { code: 500 };
      }
    };
    const classOf = new Map<string, string>(
      Object.entries(DOMAINS).map(([kind, domain]) => [domain, kind]),
    );
    return {
      tmp,
      dns,
      upstream,
      get router() {
        return router;
      },
      configPath,
      postmapConfigDir,
      relayPort,
      postfix,
      relaySink,
      defaultSink,
      bulkDomains,
      relayResult,
      relayPairResult,
      expected(domainOrKey: string): Expected {
        const domain = domainOfKey(domainOrKey);
        return expectedFor(classOf.get(domain) ?? bulkKinds.get(domain) ?? "nxDomain");
      },
      postmap: (key) => postmapQuery({ configDir: postmapConfigDir, table: router.table, key }),
      fixFlaky: () =>
        upstream.setZone(DOMAINS.flaky, {
          kind: "mx",
          records: [{ preference: 10, exchange: FLAKY_FIXED_MX }],
          ttl: 60,
        }),
      async restartRouter() {
        routerLogs += router.stderr();
        await router.stop();
        router = await startRouter({ ...routerOptions, port: router.port });
        return router;
      },
      async diagnostics() {
        const tail = (text: string, lines = 60) => text.split("\n").slice(-lines).join("\n");
        return [
          `---- e2e environment in ${tmp} (E2E_KEEP=1 keeps it, E2E_VERBOSE=1 logs lookups) ----`,
          `router: ${router.command.join(" ")}`,
          `---- router stderr (tail) ----\n${tail(routerLogs + router.stderr())}`,
          `---- dnsmasq log (tail) ----\n${tail(dns.log())}`,
          postfix ? `---- Postfix maillog (tail) ----\n${tail(await postfix.maillog())}` : "",
        ].join("\n");
      },
      close,
    };
  } catch (error) {
    await close().catch((e) => console.error(`cleanup after a failed start: ${e}`));
    throw error;
  }
}

/**
 * Why a test with a private Postfix instance cannot run here (Postfix's programs missing, not
 * root), or [] when it can.
 *
 * @example
 * ```ts
 * if (missingPostfix().length > 0) console.log("skipped:", missingPostfix().join("; "));
 * ```
 */
export function missingPostfix(): string[] {
  const tools = REQUIRED_TOOLS.filter((tool) => tool.pkg === "postfix");
  const absent = tools.filter((tool) => findBinary(tool.name) === null).map((tool) => tool.name);
  return [
    ...absent.length > 0 ? [`missing ${absent.join(", ")} (Debian package postfix)`] : [],
    ...Deno.uid() !== 0 ? ["a private Postfix instance needs root"] : [],
  ];
}

/**
 * Waits until every recipient is at its sink, flushing the queue now and then (a message
 * deferred while the router was down or DNS failed is retried at the next flush); with
 * `emptyQueue`, also until nothing is left in the queue.
 *
 * @example
 * ```ts
 * declare const env: E2eEnv;
 * await waitDelivered(env, { relay: ["a@contoso.test"], dflt: [], emptyQueue: true });
 * ```
 */
export async function waitDelivered(
  env: E2eEnv,
  expected: { relay: string[]; dflt: string[]; emptyQueue: boolean },
): Promise<void> {
  const { postfix, relaySink, defaultSink } = mailParts(env);
  const { relay, dflt } = expected;
  let polls = 0;
  await waitFor(async () => {
    const relayNow = await relaySink.recipients();
    const defaultNow = await defaultSink.recipients();
    const done = relay.every((r) => relayNow.includes(r)) &&
      dflt.every((r) => defaultNow.includes(r));
    if (done && (!expected.emptyQueue || (await postfix.queue()).length === 0)) return true;
    if (++polls % 10 === 0) await postfix.flush();
    return false;
  }, {
    what: `relay ${relay.join(",")} and default ${dflt.join(",")} delivered`,
    timeoutMs: 45_000,
    intervalMs: 200,
    detail: async () => JSON.stringify(await postfix.queue()),
  });
}

/**
 * Declares a test that runs its own private Postfix instance in a temporary directory (which
 * Postfix's daemons can traverse): skipped with a notice without Postfix or root, failed with
 * CI=true. `body` registers what to stop in `cleanups`; everything is stopped and the directory
 * removed (unless E2E_KEEP=1) even when it throws.
 *
 * @example
 * ```ts
 * postfixTest("e2e: mail reaches its relay", "mx-router-e2e-x-", async (t, tmp, cleanups) => {
 *   // start DNS, sinks, the router and Postfix under tmp; push each stop onto cleanups
 * });
 * ```
 */
export function postfixTest(
  name: string,
  prefix: string,
  body: (t: Deno.TestContext, tmp: string, cleanups: Array<() => unknown>) => Promise<void>,
): void {
  const problems = missingPostfix();
  if (problems.length > 0 && !isCi()) {
    Deno.test({ name: `${name} (skipped: ${problems.join("; ")})`, ignore: true, fn() {} });
    return;
  }
  Deno.test(name, async (t) => {
    if (problems.length > 0) {
      throw new Error(`CI=true and the end-to-end test cannot run: ${problems.join("; ")}`);
    }
    const tmp = await Deno.makeTempDir({ prefix });
    // Postfix daemons and smtp-sink run as user postfix: they must traverse it.
    await Deno.chmod(tmp, 0o755);
    const cleanups: Array<() => unknown> = [];
    try {
      await body(t, tmp, cleanups);
    } finally {
      await runAll([
        ...cleanups.reverse(),
        () => Deno.env.get("E2E_KEEP") === "1" ? undefined : Deno.remove(tmp, { recursive: true }),
      ]);
    }
  });
}
