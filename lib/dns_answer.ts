/**
 * What a DNS reply to an MX query means: an {@linkcode MxOutcome} per the DNS outcome table, with
 * CNAME chains followed within the answer and anything that is not a whole answer a failure.
 *
 * Pure functions without I/O or clock, so hostile packets can be tested byte by byte.
 *
 * @module
 */

// @ts-types="@types/dns-packet"
import type * as dnsPacket from "dns-packet";
import type { MxOutcome, TempFailAnswer } from "./dns_types.ts";
import { asciiLower, type DnsReply, isDnsName, RCODE } from "./dns_wire.ts";

/**
 * The most MX hosts kept per domain, lowest preference first. The domain's owner chooses how
 * many records to publish: thousands would cost memory in the cache and time in every rule
 * match, while real domains have a handful and the first ones decide.
 */
export const MAX_MX_HOSTS = 16;

/** How many CNAMEs an answer may chain before we call it broken. */
export const MAX_CNAME_HOPS = 8;

const RCODE_NAMES = [
  "NOERROR",
  "FORMERR",
  "SERVFAIL",
  "NXDOMAIN",
  "NOTIMP",
  "REFUSED",
  "YXDOMAIN",
  "YXRRSET",
  "NXRRSET",
  "NOTAUTH",
  "NOTZONE",
];

/** A TTL as a cache may use it: values with the top bit set mean 0 (RFC 2181 §8). */
export function usableTtl(ttl: number | undefined): number {
  return ttl === undefined || ttl >= 2 ** 31 ? 0 : ttl;
}

/** Where a reply came from, for reasons such as "SERVFAIL from 127.0.0.1:53". */
export interface ReplyContext {
  /** The queried name as returned by {@linkcode toQueryName}. */
  name: string;
  /** The server, formatted as ADDR:PORT. */
  from: string;
}

/** A record of the IN class (dns-packet folds the mDNS flush bit out of the class). */
function isIn(record: dnsPacket.Answer): boolean {
  return record.type !== "OPT" && record.class === "IN" && record.flush !== true;
}

/** A lower-cased owner or target name without trailing dot ("." stays the root). */
function normalName(name: string): string {
  const lower = asciiLower(name);
  return lower.length > 1 && lower.endsWith(".") ? lower.slice(0, -1) : lower;
}

/**
 * The negative-caching TTL of RFC 2308: min(SOA TTL, SOA MINIMUM) of the first SOA in the
 * authority section whose owner is `name` or one of its ancestors (others could poison nothing
 * but are not about this name). Null without such an SOA.
 */
function negativeTtl(packet: dnsPacket.DecodedPacket, name: string): number | null {
  for (const record of packet.authorities ?? []) {
    if (record.type !== "SOA" || !isIn(record)) continue;
    const zone = normalName(record.name);
    if (zone === "." || zone === name || name.endsWith(`.${zone}`)) {
      return Math.min(usableTtl(record.ttl), usableTtl(record.data.minimum));
    }
  }
  return null;
}

/**
 * NOERROR without MX records: NODATA (the domain is its own MX) only when the reply says so:
 * - with the zone's SOA, as resolvers send NODATA (RFC 2308);
 * - entirely empty, as a local server such as dnsmasq sends it for its own names;
 * - with only the CNAME chain to the final name, from a server that recurses (RA): it followed the
 *   chain to a name without MX.
 * Anything else is a failure, never "no MX" (a wrong 500 misroutes mail): NS records only are a
 * referral (the server does not recurse), a CNAME from a server that does not recurse was not
 * followed, and records of other names answer another question.
 */
function emptyAnswerOutcome(
  packet: dnsPacket.DecodedPacket,
  reply: { soaTtl: number | null; chained: boolean; from: string; unrelated: number },
): MxOutcome {
  if (reply.soaTtl !== null) return { kind: "nodata", negativeTtl: reply.soaTtl };
  const incomplete = (why: string): TempFailAnswer => ({
    kind: "tempfail",
    reason: `incomplete answer from ${reply.from}: ${why}`,
    cause: "malformed",
  });
  if ((packet.authorities ?? []).some((record) => record.type === "NS")) {
    return incomplete("a referral (NS records only): is it a recursive resolver?");
  }
  if (reply.unrelated > 0) return incomplete("records of other names, no MX and no SOA");
  if (reply.chained && packet.flag_ra !== true) {
    return incomplete("a CNAME not followed (the server does not recurse)");
  }
  // Without an SOA the cache keeps it for --min-ttl, the shortest it keeps anything.
  return { kind: "nodata", negativeTtl: null };
}

/**
 * Turns a reply that answers an MX query for `context.name` into an outcome. Follows CNAME
 * chains within the answer section and ignores records about any other name. Never throws.
 */
export function interpretReply(reply: DnsReply, context: ReplyContext): MxOutcome {
  const { from } = context;
  const malformed = (why: string): TempFailAnswer => ({
    kind: "tempfail",
    reason: `malformed answer from ${from}: ${why}`,
    cause: "malformed",
  });
  const { rcode, packet } = reply;
  if (rcode === RCODE.SERVFAIL) {
    return { kind: "tempfail", reason: `SERVFAIL from ${from}`, cause: "servfail" };
  }
  if (rcode === RCODE.REFUSED) {
    return { kind: "tempfail", reason: `REFUSED from ${from}`, cause: "refused" };
  }
  if (rcode !== RCODE.NOERROR && rcode !== RCODE.NXDOMAIN) {
    const rcodeName = RCODE_NAMES[rcode] ?? `RCODE ${rcode}`;
    return { kind: "tempfail", reason: `${rcodeName} from ${from}`, cause: "rcode" };
  }
  // An answer cut short is never taken for the whole: over UDP the caller asks again over TCP.
  if (reply.truncated || packet === null) return malformed("truncated (TC bit set)");

  const answers = (packet.answers ?? []).filter(isIn);
  // The CNAME TTLs bound the answer too: the alias may change when they expire.
  let chainTtl = Infinity;
  let owner = context.name;
  const seen = new Set([owner]);
  for (let hops = 0;; hops++) {
    const alias = answers.find((record) =>
      record.type === "CNAME" && normalName(record.name) === owner
    );
    if (alias === undefined || alias.type !== "CNAME") break;
    if (hops === MAX_CNAME_HOPS) return malformed(`more than ${MAX_CNAME_HOPS} CNAMEs`);
    const target = normalName(alias.data);
    if (!isDnsName(target)) return malformed("bad CNAME target");
    if (seen.has(target)) return malformed(`CNAME loop at ${target}`);
    seen.add(target);
    owner = target;
    chainTtl = Math.min(chainTtl, usableTtl(alias.ttl));
  }

  // RFC 2308's negative TTL, and through a CNAME no longer than the alias; null without an SOA.
  const soaTtl = negativeTtl(packet, owner);
  const negativeTtlBound = soaTtl === null ? null : Math.min(soaTtl, chainTtl);
  if (rcode === RCODE.NXDOMAIN) return { kind: "nxdomain", negativeTtl: negativeTtlBound };

  const exchanges: { preference: number; host: string }[] = [];
  let ttl = chainTtl;
  let nullMxTtl: number | null = null;
  for (const record of answers) {
    if (record.type !== "MX" || normalName(record.name) !== owner) continue;
    const host = normalName(record.data.exchange);
    if (host === "" || host === ".") {
      nullMxTtl = Math.min(nullMxTtl ?? chainTtl, usableTtl(record.ttl));
      continue;
    }
    if (!isDnsName(host)) return malformed(`bad MX exchange "${host.slice(0, 80)}"`);
    exchanges.push({ preference: record.data.preference ?? 0, host });
    ttl = Math.min(ttl, usableTtl(record.ttl));
  }
  if (exchanges.length === 0) {
    // RFC 7505: a null MX says "no mail"; mixed with real exchanges it is ignored.
    if (nullMxTtl !== null) return { kind: "nullmx", ttl: nullMxTtl };
    // Records that are neither the CNAME chain nor about its final name answer something else.
    const unrelated = answers.filter((record) =>
      !(record.type === "CNAME" && seen.has(normalName(record.name))) &&
      normalName(record.name) !== owner
    ).length;
    return emptyAnswerOutcome(packet, {
      soaTtl: negativeTtlBound,
      chained: chainTtl < Infinity,
      from,
      unrelated,
    });
  }
  // Array.prototype.sort is stable, so equal preferences keep the answer order.
  exchanges.sort((a, b) => a.preference - b.preference);
  const hosts = exchanges.slice(0, MAX_MX_HOSTS).map((mx) => mx.host);
  return { kind: "mx", hosts, ttl };
}
