/**
 * The scripted DNS zone of the differential test: one name per DNS outcome the corpus asks about,
 * served by the fake DNS server (tests/support/fake_dns.ts).
 *
 * Exchange names are lower case throughout: how the original compared an upper-case MX host with
 * its patterns is not known, so the corpus does not depend on it.
 *
 * @module
 */

// @ts-types="@types/dns-packet"
import type * as dnsPacket from "dns-packet";
import { record, soa } from "../support/dns_packets.ts";
import type { FakeDnsBehaviour } from "../support/fake_dns.ts";

/** An MX host at Microsoft 365 (the README's `protection.outlook.com` rule). */
export function microsoftHost(domain: string): string {
  return `${domain.replaceAll(".", "-")}.mail.protection.outlook.com`;
}

/** The iCloud MX hosts (the README's `icloud.com` rule). */
export const ICLOUD_HOSTS = ["mx01.mail.icloud.com", "mx02.mail.icloud.com"];

/** MX records in the order the answer lists them (not sorted by preference). */
function mx(...pairs: [number, string][]): FakeDnsBehaviour {
  return {
    kind: "mx",
    records: pairs.map(([preference, exchange]) => ({ preference, exchange })),
    ttl: 300,
  };
}

const microsoft = (domain: string) => mx([10, microsoftHost(domain)]);
const nodata: FakeDnsBehaviour = { kind: "nodata", soa: { ttl: 300, minimum: 60 } };
const cname = (target: string): FakeDnsBehaviour => ({ kind: "cname", target, ttl: 300 });

/** Exactly these records: answers no honest server gives for the question. */
function records(parts: { answers?: dnsPacket.Answer[]; authorities?: dnsPacket.Answer[] }) {
  return { kind: "records", ...parts } satisfies FakeDnsBehaviour;
}

/** An MX record of `owner` at Microsoft, of class IN unless `options` say otherwise. */
function microsoftMx(owner: string, options: { class?: string; flush?: boolean } = {}) {
  return record("MX", owner, { preference: 10, exchange: microsoftHost(owner) }, options);
}

/** Twenty MX hosts, preferences 1 to 20; the Microsoft one at `microsoftPreference`. */
function manyMx(domain: string, microsoftPreference: number): FakeDnsBehaviour {
  const pairs: [number, string][] = [];
  for (let preference = 1; preference <= 20; preference++) {
    pairs.push([
      preference,
      preference === microsoftPreference
        ? microsoftHost(domain)
        : `mx${String(preference).padStart(2, "0")}.many.test`,
    ]);
  }
  return mx(...pairs);
}

/** A chain of CNAMEs `from` → hop1 → ... → `target`, `hops` CNAMEs in all. */
function chain(from: string, hops: number, target: string): Record<string, FakeDnsBehaviour> {
  const names = [from];
  for (let i = 1; i < hops; i++) names.push(`hop${i}.${from}`);
  const zone: Record<string, FakeDnsBehaviour> = {};
  names.forEach((name, i) => zone[name] = cname(names[i + 1] ?? target));
  return zone;
}

/** Every name the corpus looks up; names not here get NXDOMAIN without an SOA. */
export const ZONE: Record<string, FakeDnsBehaviour> = {
  // MX that the README's rules match, and MX they do not.
  "o365.test": microsoft("o365.test"),
  "hotmail.test": mx([5, "hotmail-com.olc.protection.outlook.com"]),
  "mxms.test": mx([10, "mxms-test.k-v1.mx.microsoft"]),
  "icloud.test": mx([10, ICLOUD_HOSTS[0]], [10, ICLOUD_HOSTS[1]]),
  "gmail.test": mx([5, "gmail-smtp-in.l.google.com"], [10, "alt1.gmail-smtp-in.l.google.com"]),
  "own.test": mx([10, "mail.own.test"]),
  "lookalike.test": mx([10, "x.mail.protection.outlook.com.attacker.test"]),
  "dup-protection.test": mx([10, "mx.protection.example.net"]),
  "regexhost.test": mx([10, "inbound.icloud-like.example"]),
  "xn--mller-kva.test": microsoft("xn--mller-kva.test"),
  "singlelabel": microsoft("singlelabel"),
  "bareword": nodata,

  // Several MX hosts: which one decides.
  "backup-ms.test": mx([10, "mail.backup-ms.test"], [20, microsoftHost("backup-ms.test")]),
  "primary-ms.test": mx([10, microsoftHost("primary-ms.test")], [20, "mail.primary-ms.test"]),
  "order-same.test": mx([10, ICLOUD_HOSTS[0]], [20, microsoftHost("order-same.test")]),
  "order-reversed.test": mx([20, microsoftHost("order-reversed.test")], [10, ICLOUD_HOSTS[0]]),
  "order-tie.test": mx([10, microsoftHost("order-tie.test")], [10, ICLOUD_HOSTS[0]]),
  "order-reversed-same.test": mx([20, "b.mail.protection.outlook.com"], [
    10,
    "a.mail.protection.outlook.com",
  ]),
  "many-mx-early.test": manyMx("many-mx-early.test", 1),
  "many-mx-late.test": manyMx("many-mx-late.test", 20),

  // Null MX, NODATA, NXDOMAIN.
  "nullmx.test": { kind: "nullmx" },
  "nullmx-mixed.test": mx([0, "."], [10, microsoftHost("nullmx-mixed.test")]),
  "nodata-soa.test": nodata,
  "nodata-empty.test": { kind: "nodata" },
  "fanicloud.com": nodata,
  "protection.outlook.com.nomx.test": nodata,
  "mx.microsoft.nomx.test": nodata,
  "myicloud.test": nodata,
  "implicit-exact.test": nodata,
  "implicit-suffix.test": nodata,
  "a.implicit-suffix.test": nodata,
  "gone.test": { kind: "nxdomain", soa: { ttl: 300, minimum: 60 } },

  // Failures.
  "servfail.test": { kind: "servfail" },
  "refused.test": { kind: "refused" },
  "notimp.test": { kind: "rcode", rcode: 4 },
  "silent.test": { kind: "silence" },
  "garbage.test": { kind: "garbage" },
  "truncated.test": { kind: "truncate", then: microsoft("truncated.test") },
  "slow.test": { kind: "delay", ms: 100, then: microsoft("slow.test") },

  // CNAME chains.
  "alias.test": cname("o365.test"),
  "alias2.test": cname("alias.test"),
  "alias-icloud.test": cname("icloud.test"),
  "alias-nx.test": cname("gone-target.test"),
  "alias-nodata.test": cname("nodata-soa.test"),
  "alias-fanicloud.test": cname("fanicloud.com"),
  "alias-servfail.test": cname("servfail.test"),
  "alias-loop.test": cname("alias-loop-b.test"),
  "alias-loop-b.test": cname("alias-loop.test"),
  ...chain("alias-five.test", 5, "o365.test"),
  ...chain("alias-ten.test", 10, "o365.test"),

  // Issue 16 part 2: answers nobody can account for.
  "class-ch.test": records({ answers: [microsoftMx("class-ch.test", { class: "CH" })] }),
  "flush-bit.test": records({ answers: [microsoftMx("flush-bit.test", { flush: true })] }),
  "foreign-soa.test": records({ authorities: [soa("example.org", 300, 60)] }),
  "authority-a.test": records({ authorities: [record("A", "other.example", "192.0.2.1")] }),
  "other-mx-root-soa.test": records({
    answers: [microsoftMx("someone-else.test")],
    authorities: [soa(".", 300, 60)],
  }),

  // Issue 16 part 3: exchange names that are no host names (a space; a byte over 0x7f).
  "bad-exchange.test": mx([10, microsoftHost("bad-exchange.test")], [20, "backup mx.example"]),
  "bad-exchange-first.test": mx([10, "backup mx.example"], [
    20,
    microsoftHost("bad-exchange-first.test"),
  ]),
  "bad-exchange-other.test": mx([10, "mail.other.test"], [20, "bad mx.example"]),
  "bad-exchange-only.test": mx([10, "bad mx.example"]),
  "bad-exchange-lookalike.test": mx([10, "backup protection.outlook.com"]),
  "bad-bytes.test": mx([10, microsoftHost("bad-bytes.test")], [20, "mx\u00e9.example"]),

  // Issue 16 part 1: domains the override config names (each MX would route them otherwise).
  "contoso-ov.test": microsoft("contoso-ov.test"),
  "sub-ov.test": microsoft("sub-ov.test"),
  "a.sub-ov.test": microsoft("a.sub-ov.test"),
  "x.sub-ov.test": microsoft("x.sub-ov.test"),
  "deep.x.sub-ov.test": microsoft("deep.x.sub-ov.test"),
  "y.a.sub-ov.test": microsoft("y.a.sub-ov.test"),
  "exact.sub-ov.test": mx([10, "mail.own.test"]),
  "dunno-ov.test": microsoft("dunno-ov.test"),
  "xn--bcher-ov-65a.test": mx([10, "mail.own.test"]),
  "xn--mller-ov-65a.test": mx([10, "mail.own.test"]),
  "upper-ov.test": mx([10, "mail.own.test"]),
  "down-ov.test": { kind: "servfail" },
  "silent-ov.test": { kind: "silence" },
  "pooled-ov.test": mx([10, "mail.own.test"]),
};
