/**
 * The benchmark's data, generated from a fixed seed: a DNS zone of 20,000 domains with a realistic
 * MX mix (Microsoft 365, Google, iCloud, mail gateways, self-hosted, and the negative answers), a
 * long-tailed (Zipf, s = 1) workload of 100,000 recipient keys over about 13,000 of those domains,
 * the rules file, and the reply each key should get.
 *
 * Pure: no I/O, no clock. Same seed, same bytes.
 *
 * @module
 */

import type { FakeDnsBehaviour, FakeMxRecord } from "../tests/support/fake_dns.ts";
import { domainToASCII } from "node:url";
import { encodeTcpTable } from "../lib/server/tcp_table.ts";

/** The rules the benchmark's router runs: Microsoft-, Google- and iCloud-like MX, as shipped. */
export const BENCH_RULES = `# postfix-mx-pattern-router benchmark rules (same as the example config)
suffix:mail.protection.outlook.com   relay:[office365-relay.example.com]:587
suffix:google.com                    smtp:[google-relay-a.example.com]:25, [google-relay-b.example.com]:25
suffix:mail.icloud.com               relay:[icloud-relay.example.com]:587
`;

/** The MX exchange of the zone's fallback: any name not in the zone is a Microsoft 365 tenant. */
export const FALLBACK_EXCHANGE = "fallback-tenant.mail.protection.outlook.com";

/** Returns a deterministic pseudo-random generator in [0, 1) (mulberry32). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** How a domain's mail is hosted; decides its MX records and the reply it should get. */
export type DomainKind =
  | "microsoft"
  | "google"
  | "icloud"
  | "gateway-then-microsoft"
  | "gateway"
  | "self-hosted"
  | "hoster"
  | "nodata"
  | "nxdomain"
  | "nullmx";

/** One domain of the zone. */
export interface ZoneDomain {
  /** The name as Postfix sends it (UTF-8 for internationalised names). */
  unicode: string;
  /** The ASCII (A-label) name the DNS knows. */
  ascii: string;
  kind: DomainKind;
  behaviour: FakeDnsBehaviour;
  /** The tcp_table reply code the router should give. */
  expected: 200 | 500;
}

/** TTL profile: `long` for the benchmark (nothing expires in it), `short` for the soak. */
export type TtlProfile = "long" | "short";

/** Options of {@linkcode generateZone}. */
export interface ZoneOptions {
  /** How many domains (default 20,000). */
  domains?: number;
  seed?: number;
  ttl?: TtlProfile;
}

// Shares of the generated domains (the named hot ones come first); they add up to 1.
const MIX: [DomainKind, number][] = [
  ["microsoft", 0.38],
  ["google", 0.24],
  ["icloud", 0.02],
  ["gateway-then-microsoft", 0.02],
  ["gateway", 0.08],
  ["self-hosted", 0.12],
  ["hoster", 0.06],
  ["nodata", 0.02],
  ["nxdomain", 0.03],
  ["nullmx", 0.03],
];

const EXPECTED: Record<DomainKind, 200 | 500> = {
  microsoft: 200,
  google: 200,
  icloud: 200,
  "gateway-then-microsoft": 200,
  gateway: 500,
  "self-hosted": 500,
  hoster: 500,
  nodata: 500,
  nxdomain: 500,
  nullmx: 500,
};

const SYLLABLES = [
  "ka",
  "lo",
  "mi",
  "ter",
  "von",
  "ber",
  "an",
  "sol",
  "tec",
  "net",
  "data",
  "med",
  "bau",
  "gar",
  "ri",
  "zen",
  "pro",
  "max",
  "nor",
  "lux",
];
const TLDS = ["com", "com", "com", "de", "de", "net", "org", "fr", "nl", "co.uk", "ch", "io"];
const IDN_PARTS = ["müller", "bäcker", "straße", "größe", "café", "ñandú", "øre", "kühl"];
const HOSTERS = [
  ["mx00.ionos.de", "mx01.ionos.de"],
  ["mx.zoho.eu", "mx2.zoho.eu"],
  ["mail.protonmail.ch", "mailsec.protonmail.ch"],
  ["mx.ovh.net", "mx1.ovh.net"],
  ["mx1.hostinger.com", "mx2.hostinger.com"],
];

/** The hot domains of the workload's head, in rank order (rank 1 is the most frequent). */
const HOT: { name: string; kind: DomainKind; records?: FakeMxRecord[] }[] = [
  { name: "gmail.com", kind: "google", records: googleRecords("gmail-smtp-in.l.google.com") },
  {
    name: "outlook.com",
    kind: "hoster",
    records: [{ preference: 5, exchange: "outlook-com.olc.protection.outlook.com" }],
  },
  { name: "icloud.com", kind: "icloud" },
  {
    name: "yahoo.com",
    kind: "hoster",
    records: ["mta5.am0.yahoodns.net", "mta6.am0.yahoodns.net", "mta7.am0.yahoodns.net"].map((
      exchange,
    ) => ({ preference: 1, exchange })),
  },
  { name: "gmx.de", kind: "hoster", records: mxPair("mx00.emig.gmx.net", "mx01.emig.gmx.net") },
  { name: "web.de", kind: "hoster", records: mxPair("mx-ha03.web.de", "mx-ha02.web.de") },
  { name: "example-corp.com", kind: "microsoft" },
  { name: "partner-firm.de", kind: "google" },
];

function mxPair(first: string, second: string): FakeMxRecord[] {
  return [{ preference: 10, exchange: first }, { preference: 20, exchange: second }];
}

function googleRecords(primary: string): FakeMxRecord[] {
  const base = primary.replace(/^[a-z-]+\./, "");
  return [
    { preference: 5, exchange: primary },
    { preference: 10, exchange: `alt1.${base}` },
    { preference: 20, exchange: `alt2.${base}` },
    { preference: 30, exchange: `alt3.${base}` },
    { preference: 40, exchange: `alt4.${base}` },
  ];
}

function pick<T>(random: () => number, list: readonly T[]): T {
  return list[Math.floor(random() * list.length)];
}

function pickKind(random: () => number): DomainKind {
  let x = random();
  for (const [kind, share] of MIX) {
    if (x < share) return kind;
    x -= share;
  }
  return "self-hosted";
}

function ttlFor(random: () => number, profile: TtlProfile): number {
  // Real MX TTLs: 300 s to a day (the router caps at --cache-ttl, 3600 s). The soak uses 30 to
  // 120 s so that entries expire, and are refreshed, during the DNS outages.
  return profile === "long"
    ? pick(random, [300, 3600, 3600, 3600, 86400])
    : pick(random, [30, 45, 60, 90, 120]);
}

function behaviourFor(
  kind: DomainKind,
  ascii: string,
  random: () => number,
  profile: TtlProfile,
  records?: FakeMxRecord[],
): FakeDnsBehaviour {
  const ttl = ttlFor(random, profile);
  const soa = profile === "long" ? { ttl: 3600, minimum: 900 } : { ttl: 60, minimum: 30 };
  const tenant = ascii.replace(/\./g, "-");
  const mx = (list: FakeMxRecord[]): FakeDnsBehaviour => ({ kind: "mx", records: list, ttl });
  if (records !== undefined) return mx(records);
  switch (kind) {
    case "microsoft":
      return mx([{ preference: 0, exchange: `${tenant}.mail.protection.outlook.com` }]);
    case "google":
      return random() < 0.3
        ? mx([{ preference: 1, exchange: "smtp.google.com" }])
        : mx(googleRecords("aspmx.l.google.com"));
    case "icloud":
      return mx(mxPair("mx01.mail.icloud.com", "mx02.mail.icloud.com"));
    case "gateway-then-microsoft":
      return mx([
        { preference: 10, exchange: `mxa-00${tenant.length}a1b.gslb.pphosted.com` },
        { preference: 20, exchange: `${tenant}.mail.protection.outlook.com` },
      ]);
    case "gateway":
      return random() < 0.5
        ? mx(mxPair(`mxa-00${tenant.length}c2d.gslb.pphosted.com`, "mxb-00c2d.gslb.pphosted.com"))
        : mx(mxPair("eu-smtp-inbound-1.mimecast.com", "eu-smtp-inbound-2.mimecast.com"));
    case "self-hosted":
      return random() < 0.6 ? mx(mxPair(`mx1.${ascii}`, `mx2.${ascii}`)) : mx([{
        preference: 10,
        exchange: `mail.${ascii}`,
      }]);
    case "hoster": {
      const [first, second] = pick(random, HOSTERS);
      return mx(mxPair(first, second));
    }
    case "nodata":
      return { kind: "nodata", soa };
    case "nxdomain":
      return { kind: "nxdomain", soa };
    case "nullmx":
      return { kind: "nullmx", ttl };
  }
}

/**
 * Generates the zone: the hot domains, then generated ones in the {@linkcode MIX} shares, about
 * 1 % of them internationalised. Index = popularity rank - 1.
 *
 * @example
 * ```ts
 * const zone = generateZone({ domains: 20_000, seed: 1 });
 * zone[0].ascii; // "gmail.com"
 * ```
 */
export function generateZone(options: ZoneOptions = {}): ZoneDomain[] {
  const count = options.domains ?? 20_000;
  const profile = options.ttl ?? "long";
  const random = seededRandom(options.seed ?? 20250601);
  const domains: ZoneDomain[] = [];
  const seen = new Set<string>();
  for (const hot of HOT.slice(0, count)) {
    const behaviour = behaviourFor(hot.kind, hot.name, random, profile, hot.records);
    domains.push({
      unicode: hot.name,
      ascii: hot.name,
      kind: hot.kind,
      behaviour,
      expected: EXPECTED[hot.kind],
    });
    seen.add(hot.name);
  }
  while (domains.length < count) {
    const n = domains.length;
    const stem = pick(random, SYLLABLES) + pick(random, SYLLABLES) +
      (random() < 0.5 ? pick(random, SYLLABLES) : "") + (random() < 0.7 ? String(n) : "");
    const idn = random() < 0.01;
    const unicode = `${idn ? pick(random, IDN_PARTS) + n : stem}.${pick(random, TLDS)}`;
    const ascii = idn ? domainToASCII(unicode) : unicode;
    if (seen.has(ascii)) continue;
    seen.add(ascii);
    const kind = pickKind(random);
    domains.push({
      unicode,
      ascii,
      kind,
      behaviour: behaviourFor(kind, ascii, random, profile),
      expected: EXPECTED[kind],
    });
  }
  return domains;
}

/** The fake DNS zone file (`--zone-file`) for a zone; names not in it get a Microsoft 365 MX. */
export function zoneFile(
  domains: readonly ZoneDomain[],
  profile: TtlProfile = "long",
): { zone: Record<string, FakeDnsBehaviour>; fallback: FakeDnsBehaviour } {
  const zone: Record<string, FakeDnsBehaviour> = {};
  for (const domain of domains) zone[domain.ascii] = domain.behaviour;
  return {
    zone,
    fallback: {
      kind: "mx",
      records: [{ preference: 0, exchange: FALLBACK_EXCHANGE }],
      ttl: profile === "long" ? 3600 : 60,
    },
  };
}

/** A generated workload. */
export interface Workload {
  /** Keys as sent on the wire (`user@domain`, %-encoded), in request order. */
  keys: string[];
  /** The reply code each key should get. */
  expected: (200 | 500)[];
  /** Distinct domains (ASCII) the keys name. */
  distinctDomains: number;
  /** Keys per reply code expected. */
  expectedCounts: { 200: number; 500: number };
}

/** Options of {@linkcode generateWorkload}. */
export interface WorkloadOptions {
  /** How many keys (default 100,000). */
  keys?: number;
  seed?: number;
  /** Zipf exponent over the zone's popularity ranks (default 1.0: about 13,000 domains). */
  exponent?: number;
}

const FIRST = ["anna", "ben", "carla", "david", "eva", "frank", "gina", "hugo", "ida", "jan"];
const LAST = ["schmidt", "meyer", "martin", "dubois", "jansen", "rossi", "smith", "weber", "roy"];
const ROLES = ["info", "sales", "support", "billing", "office", "hr", "noreply", "postmaster"];

function localPart(random: () => number, index: number): string {
  const x = random();
  if (x < 0.15) return pick(random, ROLES);
  if (x < 0.7) return `${pick(random, FIRST)}.${pick(random, LAST)}`;
  if (x < 0.9) return `${pick(random, FIRST)[0]}${pick(random, LAST)}${index % 100}`;
  return `${pick(random, FIRST)}+${pick(random, ["news", "orders", "git"])}`;
}

/**
 * Draws keys from the zone with Zipf(s) popularity: a few hot domains, a long tail.
 *
 * @example
 * ```ts
 * const zone = generateZone({ domains: 20_000, seed: 1 });
 * const workload = generateWorkload(zone, { keys: 100_000 });
 * workload.distinctDomains; // about 13,000
 * ```
 */
export function generateWorkload(
  zone: readonly ZoneDomain[],
  options: WorkloadOptions = {},
): Workload {
  const count = options.keys ?? 100_000;
  const random = seededRandom((options.seed ?? 20250601) ^ 0x5bd1e995);
  const s = options.exponent ?? 1.0;
  const cumulative = new Float64Array(zone.length);
  let total = 0;
  for (let i = 0; i < zone.length; i++) {
    total += 1 / Math.pow(i + 1, s);
    cumulative[i] = total;
  }
  const keys: string[] = [];
  const expected: (200 | 500)[] = [];
  const distinct = new Set<number>();
  const expectedCounts = { 200: 0, 500: 0 };
  for (let k = 0; k < count; k++) {
    const target = random() * total;
    let low = 0;
    let high = zone.length - 1;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (cumulative[mid] < target) low = mid + 1;
      else high = mid;
    }
    const domain = zone[low];
    distinct.add(low);
    keys.push(encodeTcpTable(`${localPart(random, k)}@${domain.unicode}`));
    expected.push(domain.expected);
    expectedCounts[domain.expected]++;
  }
  return { keys, expected, distinctDomains: distinct.size, expectedCounts };
}

/**
 * Keys of `count` distinct domains that are not in the zone (the DNS fallback answers them), for
 * filling the cache and for the soak's misses.
 */
export function freshKeys(prefix: string, start: number, count: number): string[] {
  const keys: string[] = [];
  for (let i = start; i < start + count; i++) keys.push(`user${i % 97}@${prefix}${i}.example`);
  return keys;
}
