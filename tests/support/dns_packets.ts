/**
 * Hand-made DNS replies to one fixed MX query, for the wire and answer tests.
 *
 * @module
 */

// @ts-types="@types/dns-packet"
import * as dnsPacket from "dns-packet";
import { interpretReply } from "../../lib/dns/answer.ts";
import type { MxOutcome } from "../../lib/dns/types.ts";
import { checkReply } from "../../lib/dns/wire.ts";

/** The query the replies answer. */
export const QUERY = { id: 0x1234, name: "example.com" };
/** The server they come from, as reasons name it. */
export const FROM = "127.0.0.1:53";

/** The parts of a reply: a dns-packet packet without its type, and an rcode. */
export type Parts = Omit<dnsPacket.Packet, "type"> & { rcode?: number };

/** A response to QUERY unless the parts say otherwise. */
export function response(parts: Parts = {}): Uint8Array {
  return dnsPacket.encode({
    type: "response",
    id: QUERY.id,
    questions: [{ type: "MX", class: "IN", name: QUERY.name }],
    ...parts,
    flags: (parts.flags ?? 0) | (parts.rcode ?? 0),
  });
}

/** An MX record. */
export function mx(
  name: string,
  preference: number,
  exchange: string,
  ttl = 300,
): dnsPacket.Answer {
  return { type: "MX", name, ttl, class: "IN", data: { preference, exchange } };
}

/** A CNAME record. */
export function cname(name: string, target: string, ttl = 300): dnsPacket.Answer {
  return { type: "CNAME", name, ttl, class: "IN", data: target };
}

/** An SOA record with this TTL and MINIMUM. */
export function soa(name: string, ttl: number, minimum: number): dnsPacket.Answer {
  return {
    type: "SOA",
    name,
    ttl,
    class: "IN",
    data: { mname: "ns.example.com", rname: "hostmaster.example.com", minimum },
  };
}

/**
 * A record of any type, class and owner (TTL 60), for answers no honest server gives:
 * `record("MX", "example.com", { preference: 0, exchange: "c.test" }, { class: "CH" })`.
 */
export function record(
  type: string,
  name: string,
  data: unknown,
  options: { class?: string; flush?: boolean } = {},
): dnsPacket.Answer {
  return { type, name, ttl: 60, class: "IN", data, ...options } as dnsPacket.Answer;
}

/** What the router makes of a response with these parts (it must answer QUERY). */
export function outcome(parts: Parts): MxOutcome {
  const check = checkReply(response(parts), QUERY);
  if (check.kind !== "reply") throw new Error(`expected a reply, got ${JSON.stringify(check)}`);
  return interpretReply(check.reply, { name: QUERY.name, from: FROM });
}
