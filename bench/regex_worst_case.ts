/**
 * `deno task bench:regex`: the worst case of `/regex/` rules per lookup, where an attacker names a
 * domain's 16 MX hosts, each of 253 characters, and no rule matches them.
 *
 * 1. In the process, what a lookup runs (`matchRules` over 16 hostile names): issue 17's rules
 *    (each refused with its reason, or timed), and for each costly shape the largest rule the
 *    instruction limit accepts; also RE2's lazy DFA (`RE2JS.test`, which the router does not use)
 *    on the shape that makes it build a state per character.
 * 2. The router process behind a DNS server that gives every unknown domain 16 hostile MX hosts
 *    for the costliest rule: one connection looks up fresh hostile domains while another repeats
 *    a cached lookup; the cached lookup's latency, with and without the attack.
 *
 * ```sh
 * deno task bench:regex [--lookups N] [--seconds N]
 * ```
 *
 * The markdown tables go to stdout, progress to stderr; results to bench/results.json ("regex").
 *
 * @module
 */

import { parseArgs } from "node:util";
import { RE2JS } from "re2js";
import { parseConfig } from "../lib/config.ts";
import { MAX_MX_HOSTS } from "../lib/dns_answer.ts";
import { compileRegex, MAX_REGEX_INSTRUCTIONS } from "../lib/regex.ts";
import { matchRules, type Rule } from "../lib/rules.ts";
import { delay } from "../tests/support/e2e_util.ts";
import { LineReader, percentile, writeAll } from "./loadgen.ts";
import { DnsProcess, HOST, startRouter } from "./processes.ts";
import { machineFacts, writeResults } from "./setup.ts";
import { seededRandom } from "./workload.ts";

/** The longest DNS name. */
const NAME_LENGTH = 253;

/** Issue 17's rules: the bypasses of the old check and the bounded repeats that stalled it. */
export const ISSUE_RULES = [
  "((\\d|\\d\\d))*",
  "(?:(a|aa))*",
  "((?<x>a|aa))*",
  "((a|aa)){0,250}",
  "^mx((\\d|\\d\\d))*\\.mail\\.example\\.com$",
  "[a-z.-]{0,253}[a-z.-]{0,253}[a-z.-]{0,253}\\.example\\.com$",
  "[a-z.-]{0,253}[a-z.-]{0,253}[a-z.-]{0,253}[a-z.-]{0,253}\\.example\\.com$",
];

/** Hostile names: a prefix, then random characters of the alphabet. */
interface Family {
  prefix: string;
  alphabet: string;
}

/** Costly shapes: a rule for a repeat count k, and the names that make it work. */
const SHAPES: { rule: (k: number) => string; family: Family }[] = [
  { rule: (k) => `(?:\\pL?){${k}}z`, family: { prefix: "", alphabet: "a" } },
  { rule: (k) => `(?:\\B|a){${k}}z`, family: { prefix: "", alphabet: "a" } },
  { rule: (k) => `(?:a?){${k}}z`, family: { prefix: "", alphabet: "a" } },
  { rule: (k) => `(?:a|b|c|d){0,${k}}z`, family: { prefix: "", alphabet: "abcd" } },
  {
    rule: (k) => `[a-z.-]{0,${k}}\\.example\\.com$`,
    family: { prefix: "", alphabet: "abcdefghijklmnopqrstuvwxyz-" },
  },
  { rule: (k) => `[ab]*a[ab]{${k}}x`, family: { prefix: "", alphabet: "ab" } },
];

/** Hostile names tried against every rule, besides a shape's own. */
const FAMILIES: Family[] = [
  ..."a 0 1 ab".split(" ").map((alphabet) => ({ prefix: "", alphabet })),
  { prefix: "", alphabet: "abcdefghijklmnopqrstuvwxyz0123456789-" },
  // Issue 17's rule /^mx((\d|\d\d))*\.mail\.example\.com$/ and its 44-digit MX host.
  { prefix: "mx", alphabet: "0123456789" },
  { prefix: "mx", alphabet: "1" },
];

/** Runs of each lookup in the process, of which the fastest counts. */
const REPEATS = 5;

/** Times per lookup, in milliseconds. */
export interface Timing {
  p50: number;
  p99: number;
  max: number;
}

/** One rule's row of the in-process table. */
export interface RuleRow {
  rule: string;
  /** Why the rule is refused, or null. */
  refused: string | null;
  instructions: number | null;
  /** The costliest names (prefix, then random characters of the alphabet). */
  family: Family | null;
  /** The time per lookup of 16 such names. */
  perLookup: Timing | null;
}

/** What the run measured. */
export interface RegexBenchResults {
  machine: Awaited<ReturnType<typeof machineFacts>>;
  limit: number;
  lookupsPerCase: number;
  issueRules: RuleRow[];
  atLimit: RuleRow[];
  /** RE2JS.test (the lazy DFA) on the DFA shape at the limit: why the router does not use it. */
  lazyDfa: RuleRow;
  router: {
    rule: string;
    seconds: number;
    hostileLookups: number;
    hostileReplies: Record<string, number>;
    /** Whole hostile lookups (DNS over UDP, then TCP for the truncated answer, and the match). */
    hostileMs: Timing;
    cachedIdleMs: Timing & { lookups: number };
    cachedUnderAttackMs: Timing & { lookups: number };
  };
}

/**
 * A DNS name of 253 characters: the family's prefix, then its alphabet's characters at random,
 * in labels of 63 (the last of 61).
 */
export function hostileName(family: Family, random: () => number): string {
  let name = family.prefix;
  const { alphabet } = family;
  for (let i = name.length; i < NAME_LENGTH; i++) {
    name += i % 64 === 63 ? "." : alphabet[Math.floor(random() * alphabet.length)];
  }
  return name;
}

function timing(samples: number[]): Timing {
  const sorted = Float64Array.from(samples).sort();
  return {
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    max: sorted[sorted.length - 1],
  };
}

/**
 * Times `lookups` lookups of 16 fresh hostile names each, per family; the costliest family wins.
 * Each lookup is run `repeats` times and counts its fastest run: what the input costs, without
 * the pauses other processes on the machine and the garbage collector add to any code.
 */
function timeLookups(
  test: (hosts: string[]) => unknown,
  families: Family[],
  options: { lookups: number; repeats: number; random: () => number },
): { family: Family; perLookup: Timing } {
  const { lookups, repeats, random } = options;
  let worst: { family: Family; perLookup: Timing } | null = null;
  for (const family of families) {
    const samples: number[] = [];
    for (let lookup = 0; lookup < lookups; lookup++) {
      const hosts = Array.from({ length: MAX_MX_HOSTS }, () => hostileName(family, random));
      let fastest = Infinity;
      for (let repeat = 0; repeat < repeats; repeat++) {
        const started = performance.now();
        test(hosts);
        fastest = Math.min(fastest, performance.now() - started);
      }
      samples.push(fastest);
    }
    const perLookup = timing(samples);
    if (worst === null || perLookup.p50 > worst.perLookup.p50) worst = { family, perLookup };
  }
  return worst!;
}

/** The rules of a one-rule config file, as the router loads them. */
function loadRule(source: string): { rules: readonly Rule[] } | { refused: string } {
  const parsed = parseConfig(`/${source}/ smtp:[regex.example]:25\n`, "bench.conf");
  if (parsed.ok) return { rules: parsed.ruleSet.rules };
  // "bad regular expression /SOURCE/: REASON": the reason.
  return { refused: parsed.errors[0].message.slice(`bad regular expression /${source}/: `.length) };
}

function ruleRow(source: string, own: Family | null, lookups: number): RuleRow {
  const loaded = loadRule(source);
  if ("refused" in loaded) {
    return {
      rule: source,
      refused: loaded.refused,
      instructions: null,
      family: null,
      perLookup: null,
    };
  }
  const compiled = compileRegex(source);
  const instructions = "test" in compiled ? compiled.instructions : null;
  const { family, perLookup } = timeLookups(
    (hosts) => matchRules(hosts, loaded.rules),
    own === null ? FAMILIES : [own, ...FAMILIES],
    { lookups, repeats: REPEATS, random: seededRandom(17) },
  );
  return { rule: source, refused: null, instructions, family, perLookup };
}

/** The largest repeat count whose rule the limit accepts. */
function largestAccepted(shape: (k: number) => string): string {
  let k = 1;
  while ("test" in compileRegex(shape(k + 1))) k++;
  return shape(k);
}

function say(text: string): void {
  console.error(`bench:regex: ${text}`);
}

/** The DFA shape at the limit, matched with RE2JS.test (the lazy DFA), fresh names each time. */
function lazyDfaRow(lookups: number): RuleRow {
  const source = largestAccepted(SHAPES[SHAPES.length - 1].rule);
  const regex = RE2JS.compile(source, RE2JS.CASE_INSENSITIVE);
  const { family, perLookup } = timeLookups(
    (hosts) => hosts.some((host) => regex.test(host)),
    [SHAPES[SHAPES.length - 1].family],
    // Once: the DFA keeps the states a name made, so only new names show what they cost.
    { lookups, repeats: 1, random: seededRandom(18) },
  );
  return { rule: source, refused: null, instructions: regex.programSize(), family, perLookup };
}

async function lookupLoop(
  port: number,
  keys: () => string,
  until: () => boolean,
): Promise<{ ms: number[]; replies: Record<string, number> }> {
  const conn = await Deno.connect({ hostname: HOST, port });
  conn.setNoDelay(true);
  const reader = new LineReader(conn);
  const ms: number[] = [];
  const replies: Record<string, number> = {};
  const encoder = new TextEncoder();
  try {
    while (!until()) {
      const started = performance.now();
      await writeAll(conn, encoder.encode(`get ${keys()}\n`));
      const line = await reader.nextLine();
      ms.push(performance.now() - started);
      const code = line === null ? "closed" : new TextDecoder().decode(line.subarray(0, 3));
      replies[code] = (replies[code] ?? 0) + 1;
      if (line === null) break;
    }
  } finally {
    conn.close();
  }
  return { ms, replies };
}

async function routerRun(
  rule: string,
  family: Family,
  seconds: number,
): Promise<RegexBenchResults["router"]> {
  const dir = await Deno.makeTempDir({ prefix: "mxrouter-regex-" });
  const random = seededRandom(19);
  const hosts = Array.from({ length: MAX_MX_HOSTS }, () => hostileName(family, random));
  const zonePath = `${dir}/zone.json`;
  await Deno.writeTextFile(
    zonePath,
    JSON.stringify({
      zone: {
        "good.bench.test": {
          kind: "mx",
          records: [{ preference: 10, exchange: "mx.good.example" }],
        },
      },
      fallback: {
        kind: "mx",
        records: hosts.map((exchange, i) => ({ preference: i, exchange })),
      },
    }),
  );
  const rulesPath = `${dir}/rules.conf`;
  await Deno.writeTextFile(
    rulesPath,
    `/${rule}/ smtp:[regex.example]:25\nsuffix:good.example relay:[good.example]:25\n`,
  );
  const dns = await DnsProcess.start(zonePath);
  const router = await startRouter({
    rulesPath,
    tmpDir: dir,
    dnsPort: dns.port,
    logPath: `${dir}/router.log`,
  });
  try {
    const cachedKey = () => "user@good.bench.test";
    await lookupLoop(
      router.port,
      cachedKey,
      (() => {
        let n = 0;
        return () => n++ >= 100;
      })(),
    );
    say(`router: cached lookups alone for ${seconds} s`);
    let end = performance.now() + seconds * 1000;
    const idle = await lookupLoop(router.port, cachedKey, () => performance.now() > end);
    say(`router: cached lookups beside fresh hostile domains for ${seconds} s`);
    end = performance.now() + seconds * 1000;
    let next = 0;
    const [attack, underAttack] = await Promise.all([
      lookupLoop(router.port, () => `user@d${next++}.hostile.test`, () => performance.now() > end),
      lookupLoop(router.port, cachedKey, () => performance.now() > end),
    ]);
    return {
      rule,
      seconds,
      hostileLookups: attack.ms.length,
      hostileReplies: attack.replies,
      hostileMs: timing(attack.ms),
      cachedIdleMs: { ...timing(idle.ms), lookups: idle.ms.length },
      cachedUnderAttackMs: { ...timing(underAttack.ms), lookups: underAttack.ms.length },
    };
  } finally {
    await router.stop();
    await dns.stop();
    await delay(10);
    await Deno.remove(dir, { recursive: true });
  }
}

const ms = (value: number) => value.toFixed(3);

/** The markdown tables of a run. */
export function formatRegexBench(results: RegexBenchResults): string {
  const row = (each: RuleRow) =>
    each.refused !== null
      ? `| \`/${each.rule}/\` | refused: ${each.refused.split(",")[0]} | | | | |`
      : `| \`/${each.rule}/\` | ${each.instructions} | \`${each.family!.prefix}` +
        `[${each.family!.alphabet}]...\` | ${ms(each.perLookup!.p50)} | ` +
        `${ms(each.perLookup!.p99)} | ${ms(each.perLookup!.max)} |`;
  const header = "| rule | RE2 instructions | costliest names | p50 ms | p99 ms | max ms |\n" +
    "|---|---|---|---|---|---|";
  const router = results.router;
  return [
    `Per lookup: ${MAX_MX_HOSTS} hostile names of ${NAME_LENGTH} characters, no rule matching ` +
    `(${results.lookupsPerCase} lookups per kind of names, each the fastest of ${REPEATS} runs; ` +
    `the costliest kind shown); limit ${results.limit} RE2 instructions per file. ` +
    `CPUs busy before the run: ${results.machine.busyPercentBefore?.toFixed(0) ?? "unknown"} %; ` +
    `revision ${results.machine.revision}.`,
    "",
    "Issue 17's rules:",
    "",
    header,
    ...results.issueRules.map(row),
    "",
    "The costliest rules the limit accepts:",
    "",
    header,
    ...results.atLimit.map(row),
    "",
    "Not used by the router, for comparison: RE2JS.test (the lazy DFA) on the DFA shape:",
    "",
    header,
    row(results.lazyDfa),
    "",
    `Router process, rule \`/${router.rule}/\`, ${router.seconds} s each:`,
    "",
    "| lookups | n | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|",
    `| cached, alone | ${router.cachedIdleMs.lookups} | ${ms(router.cachedIdleMs.p50)} | ` +
    `${ms(router.cachedIdleMs.p99)} | ${ms(router.cachedIdleMs.max)} |`,
    `| cached, beside the hostile ones | ${router.cachedUnderAttackMs.lookups} | ` +
    `${ms(router.cachedUnderAttackMs.p50)} | ${ms(router.cachedUnderAttackMs.p99)} | ` +
    `${ms(router.cachedUnderAttackMs.max)} |`,
    `| fresh hostile domains (DNS over UDP then TCP, and the match) | ${router.hostileLookups} | ` +
    `${ms(router.hostileMs.p50)} | ${ms(router.hostileMs.p99)} | ${ms(router.hostileMs.max)} |`,
    "",
    `Hostile replies: ${JSON.stringify(router.hostileReplies)}`,
  ].join("\n");
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    strict: true,
    options: { lookups: { type: "string" }, seconds: { type: "string" } },
  });
  const lookups = Number(values.lookups ?? 50);
  const seconds = Number(values.seconds ?? 5);
  const machine = await machineFacts();
  say("warming up");
  for (const shape of SHAPES) ruleRow(shape.rule(8), shape.family, 20);
  say("issue 17's rules");
  const issueRules = ISSUE_RULES.map((rule) => ruleRow(rule, null, lookups));
  say("the costliest rules the limit accepts");
  const atLimit = SHAPES.map((shape) =>
    ruleRow(largestAccepted(shape.rule), shape.family, lookups)
  );
  say("the lazy DFA, for comparison");
  const lazyDfa = lazyDfaRow(lookups);
  const costliest = atLimit.reduce((a, b) => (b.perLookup!.p50 > a.perLookup!.p50 ? b : a));
  say(`router process: ${costliest.rule}`);
  const router = await routerRun(costliest.rule, costliest.family!, seconds);
  const results: RegexBenchResults = {
    machine,
    limit: MAX_REGEX_INSTRUCTIONS,
    lookupsPerCase: lookups,
    issueRules,
    atLimit,
    lazyDfa,
    router,
  };
  console.log(formatRegexBench(results));
  say(`results in ${await writeResults("regex", results)}`);
}

if (import.meta.main) await main();
