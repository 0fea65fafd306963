/**
 * DNS server addresses: `--dns-server ADDR[:PORT]` values and the `nameserver` lines of
 * /etc/resolv.conf.
 *
 * @module
 */

import { err, ok, type Result } from "../common/result.ts";
import type { DnsServer } from "./types.ts";

/** A canonical IPv4 address, or null. */
function parseIpv4(text: string): string | null {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (match === null) return null;
  const octets = match.slice(1).map(Number);
  return octets.every((octet) => octet <= 255) ? octets.join(".") : null;
}

/**
 * A canonical IPv6 address, or null. An IPv4-mapped address (`::ffff:127.0.0.1`) is an IPv4 peer
 * and becomes its IPv4 address: asked from an IPv4 socket, and compared with the senders that
 * node:dgram reports in either form.
 */
function parseIpv6(text: string): string | null {
  if (!/^[0-9A-Fa-f:.]+$/.test(text) || !text.includes(":")) return null;
  let canonical: string;
  try {
    // The WHATWG URL parser validates and canonicalises IPv6 ("0:0::1" becomes "::1",
    // "::ffff:127.0.0.1" becomes "::ffff:7f00:1").
    canonical = new URL(`http://[${text}]/`).hostname.slice(1, -1);
  } catch {
    return null;
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (mapped === null) return canonical;
  const high = parseInt(mapped[1], 16);
  const low = parseInt(mapped[2], 16);
  return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
}

/**
 * An address in the one form the resolver compares: IPv4 dotted quad (IPv4-mapped IPv6
 * addresses included), IPv6 canonical. Text that is no address is returned as it is.
 *
 * @example
 * ```ts
 * canonicalAddress("::ffff:127.0.0.1"); // "127.0.0.1"
 * canonicalAddress("::ffff:7f00:1"); // "127.0.0.1"
 * canonicalAddress("2001:DB8:0::1"); // "2001:db8::1"
 * ```
 */
export function canonicalAddress(address: string): string {
  return (address.includes(":") ? parseIpv6(address) : parseIpv4(address)) ?? address;
}

/**
 * Parses `ADDR[:PORT]`: `1.2.3.4`, `1.2.3.4:5353`, `::1`, `[::1]`, `[::1]:5353`. The port
 * defaults to 53; an IPv4-mapped address (`[::ffff:127.0.0.1]:53`) becomes its IPv4 address.
 * Returns an error message for anything else (host names included).
 *
 * @example
 * ```ts
 * parseDnsServer("[::1]:5353"); // { ok: true, value: { host: "::1", port: 5353 } }
 * parseDnsServer("dns.google"); // { ok: false, error: 'bad DNS server address "dns.google": ...' }
 * ```
 */
export function parseDnsServer(text: string): Result<DnsServer> {
  const bracketed = /^\[([^\]]*)\](?::(\d{1,5}))?$/.exec(text);
  const plain = /^([^:]*)(?::(\d{1,5}))?$/.exec(text);
  let host: string | null;
  let portText: string | undefined;
  if (bracketed !== null) {
    host = parseIpv6(bracketed[1]);
    portText = bracketed[2];
  } else if (plain !== null) {
    host = parseIpv4(plain[1]);
    portText = plain[2];
  } else {
    host = parseIpv6(text);
  }
  const port = portText === undefined ? 53 : Number(portText);
  if (host === null || port < 1 || port > 65535) {
    return err(`bad DNS server address "${text}": expected ADDR[:PORT], IPv6 as [::1]:5353`);
  }
  return ok({ host, port });
}

/**
 * The `nameserver` lines of a resolv.conf, each on port 53. Comments and invalid addresses are
 * skipped; an IPv6 zone id (`fe80::1%eth0`) is dropped, since a DnsServer cannot carry it.
 *
 * @example
 * ```ts
 * nameserversFromResolvConf("# local\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\n");
 * // [{ host: "127.0.0.53", port: 53 }, { host: "fe80::1", port: 53 }]
 * ```
 */
export function nameserversFromResolvConf(text: string): DnsServer[] {
  const servers: DnsServer[] = [];
  for (const line of text.split("\n")) {
    const [keyword, address] = line.replace(/[#;].*/, "").trim().split(/\s+/);
    if (keyword !== "nameserver" || address === undefined) continue;
    const bare = address.replace(/%.*/, "");
    const host = parseIpv4(bare) ?? parseIpv6(bare);
    if (host !== null) servers.push({ host, port: 53 });
  }
  return servers;
}
