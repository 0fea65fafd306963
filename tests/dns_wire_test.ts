// @ts-types="@types/dns-packet"
import * as dnsPacket from "dns-packet";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  checkReply,
  encodeMxQuery,
  interpretReply,
  rcodeLabel,
  refusesEdns,
  toQueryName,
  usableTtl,
} from "../lib/dns_wire.ts";
import type { MxOutcome } from "../lib/dns_types.ts";

const QUERY = { id: 0x1234, name: "example.com" };
const FROM = "127.0.0.1:53";

type Parts = Omit<dnsPacket.Packet, "type"> & { rcode?: number };

/** A response to QUERY unless the parts say otherwise. */
function response(parts: Parts = {}): Uint8Array {
  return dnsPacket.encode({
    type: "response",
    id: QUERY.id,
    questions: [{ type: "MX", class: "IN", name: QUERY.name }],
    ...parts,
    flags: (parts.flags ?? 0) | (parts.rcode ?? 0),
  });
}

function mx(name: string, preference: number, exchange: string, ttl = 300): dnsPacket.Answer {
  return { type: "MX", name, ttl, class: "IN", data: { preference, exchange } };
}

function cname(name: string, target: string, ttl = 300): dnsPacket.Answer {
  return { type: "CNAME", name, ttl, class: "IN", data: target };
}

function soa(name: string, ttl: number, minimum: number): dnsPacket.Answer {
  return {
    type: "SOA",
    name,
    ttl,
    class: "IN",
    data: { mname: "ns.example.com", rname: "hostmaster.example.com", minimum },
  };
}

function outcome(parts: Parts): MxOutcome {
  const check = checkReply(response(parts), QUERY);
  if (check.kind !== "reply") throw new Error(`expected a reply, got ${JSON.stringify(check)}`);
  return interpretReply(check.reply, { name: QUERY.name, from: FROM });
}

Deno.test("encodeMxQuery: ID, RD, one MX/IN question and EDNS0 with 1232 bytes", () => {
  const bytes = encodeMxQuery(QUERY);
  const packet = dnsPacket.decode(Buffer.from(bytes));
  assert.equal(packet.id, 0x1234);
  assert.equal(packet.flag_qr, false);
  assert.equal(packet.flag_rd, true);
  assert.deepEqual(packet.questions, [{ name: "example.com", type: "MX", class: "IN" }]);
  const opt = packet.additionals?.[0];
  assert.equal(opt?.type, "OPT");
  assert.equal(opt?.type === "OPT" && opt.udpPayloadSize, 1232);
});

Deno.test("encodeMxQuery without EDNS0: no OPT record, the same bytes as dns-packet's", () => {
  const bytes = encodeMxQuery({ ...QUERY, edns: false });
  const expected = dnsPacket.encode({
    type: "query",
    id: QUERY.id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: "MX", class: "IN", name: QUERY.name }],
  });
  assert.deepEqual([...bytes], [...expected]);
});

Deno.test("refusesEdns: FORMERR without an OPT record only", () => {
  const reply = (parts: Parts) => {
    const check = checkReply(response(parts), QUERY);
    if (check.kind !== "reply") throw new Error(JSON.stringify(check));
    return check.reply;
  };
  assert.equal(refusesEdns(reply({ rcode: 1 })), true);
  const opt: dnsPacket.Answer = {
    type: "OPT",
    name: ".",
    udpPayloadSize: 1232,
    extendedRcode: 0,
    ednsVersion: 0,
    flags: 0,
    flag_do: false,
    options: [],
  };
  assert.equal(refusesEdns(reply({ rcode: 1, additionals: [opt] })), false);
  assert.equal(refusesEdns(reply({ rcode: 2 })), false);
});

Deno.test("toQueryName: lower-cases, drops one trailing dot, rejects impossible names", () => {
  assert.equal(toQueryName("Example.COM."), "example.com");
  assert.equal(toQueryName("a.b"), "a.b");
  assert.equal(toQueryName(""), null);
  assert.equal(toQueryName("."), null);
  assert.equal(toQueryName("a..b"), null);
  assert.equal(toQueryName("a b.com"), null);
  assert.equal(toQueryName("bücher.de"), null);
  assert.equal(toQueryName(`${"a".repeat(63)}.com`), `${"a".repeat(63)}.com`);
  assert.equal(toQueryName(`${"a".repeat(64)}.com`), null);
  const longest = `${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(61)}`;
  assert.equal(longest.length, 253);
  assert.equal(toQueryName(longest), longest);
  assert.equal(toQueryName(`${longest}e`), null);
});

Deno.test("usableTtl: top bit set counts as 0 (RFC 2181 §8)", () => {
  assert.equal(usableTtl(2 ** 31 - 1), 2 ** 31 - 1);
  assert.equal(usableTtl(2 ** 31), 0);
  assert.equal(usableTtl(2 ** 32 - 1), 0);
  assert.equal(usableTtl(undefined), 0);
});

Deno.test("rcodeLabel: fixed labels", () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 16].map(rcodeLabel), [
    "noerror",
    "other",
    "servfail",
    "nxdomain",
    "other",
    "refused",
    "other",
  ]);
});

Deno.test("checkReply: ignores what does not answer our query", () => {
  assert.deepEqual(checkReply(new Uint8Array(11), QUERY), {
    kind: "ignore",
    why: "packet shorter than a DNS header",
  });
  assert.deepEqual(checkReply(response({ id: 0x1235 }), QUERY), {
    kind: "ignore",
    why: "wrong ID",
  });
  const query = encodeMxQuery(QUERY);
  assert.deepEqual(checkReply(query, QUERY), { kind: "ignore", why: "not a response" });
  const wrongQuestions: dnsPacket.Question[][] = [
    [{ type: "MX", class: "IN", name: "example.org" }],
    [{ type: "A", class: "IN", name: "example.com" }],
    [{ type: "MX", class: "CH", name: "example.com" }],
    [],
    [
      { type: "MX", class: "IN", name: "example.com" },
      { type: "MX", class: "IN", name: "example.com" },
    ],
  ];
  for (const questions of wrongQuestions) {
    assert.deepEqual(checkReply(response({ questions }), QUERY), {
      kind: "ignore",
      why: "wrong question",
    });
  }
  const notify = response();
  notify[2] |= 4 << 3; // opcode NOTIFY
  assert.deepEqual(checkReply(notify, QUERY), { kind: "ignore", why: "wrong opcode" });
});

Deno.test("checkReply: question name matches case-insensitively (ASCII only)", () => {
  const questions: dnsPacket.Question[] = [{ type: "MX", class: "IN", name: "ExAmPlE.CoM" }];
  assert.equal(checkReply(response({ questions }), QUERY).kind, "reply");
  // U+212A KELVIN SIGN lower-cases to "k" in Unicode but is not ASCII "K".
  const kelvin = { id: 1, name: "k.test" };
  const packet = dnsPacket.encode({
    type: "response",
    id: 1,
    questions: [{ type: "MX", class: "IN", name: "\u212a.test" }],
  });
  assert.deepEqual(checkReply(packet, kelvin), { kind: "ignore", why: "wrong question" });
});

Deno.test("checkReply: TC bit and EDNS0 extended rcode", () => {
  const truncated = checkReply(response({ flags: dnsPacket.TRUNCATED_RESPONSE }), QUERY);
  assert.equal(truncated.kind === "reply" && truncated.reply.truncated, true);
  const badvers = checkReply(
    response({
      additionals: [{
        type: "OPT",
        name: ".",
        udpPayloadSize: 1232,
        extendedRcode: 1,
        ednsVersion: 0,
        flags: 0,
        flag_do: false,
        options: [],
      }],
    }),
    QUERY,
  );
  assert.equal(badvers.kind === "reply" && badvers.reply.rcode, 16);
  assert.equal(badvers.kind === "reply" && badvers.reply.truncated, false);
});

/** Offset of the first answer record in a response to QUERY. */
const ANSWER_OFFSET = 12 + "example.com".length + 2 + 4;

Deno.test("checkReply: a compression pointer loop is malformed, not a hang", () => {
  const bytes = response({ answers: [mx("example.com", 10, "mx.example.com")] });
  // The answer's owner name becomes a pointer to itself.
  bytes[ANSWER_OFFSET] = 0xc0 | (ANSWER_OFFSET >> 8);
  bytes[ANSWER_OFFSET + 1] = ANSWER_OFFSET & 0xff;
  assert.deepEqual(checkReply(bytes, QUERY), {
    kind: "malformed",
    why: "Cannot decode name (bad pointer)",
  });
});

Deno.test("checkReply: a pointer past the packet and counts exceeding it are malformed", () => {
  const pointer = response({ answers: [mx("example.com", 10, "mx.example.com")] });
  pointer[ANSWER_OFFSET] = 0xff;
  pointer[ANSWER_OFFSET + 1] = 0xff;
  assert.equal(checkReply(pointer, QUERY).kind, "malformed");
  const counts = response({ answers: [mx("example.com", 10, "mx.example.com")] });
  counts[6] = 0xff; // ANCOUNT 65281
  counts[7] = 0x01;
  assert.equal(checkReply(counts, QUERY).kind, "malformed");
  const cut = response({ answers: [mx("example.com", 10, "mx.example.com")] });
  assert.equal(checkReply(cut.subarray(0, cut.length - 3), QUERY).kind, "malformed");
});

Deno.test("interpretReply: MX hosts by preference, ties in answer order, min TTL", () => {
  assert.deepEqual(
    outcome({
      answers: [
        mx("example.com", 20, "B.Example.NET.", 600),
        mx("Example.COM", 10, "mx1.example.com", 300),
        mx("example.com", 20, "a.example.net", 120),
        mx("example.com", 5, "first.example.org", 900),
      ],
    }),
    {
      kind: "mx",
      hosts: ["first.example.org", "mx1.example.com", "b.example.net", "a.example.net"],
      ttl: 120,
    },
  );
});

Deno.test("interpretReply: TTL 0 and TTLs with the top bit set", () => {
  assert.deepEqual(outcome({ answers: [mx("example.com", 10, "mx.example.com", 0)] }), {
    kind: "mx",
    hosts: ["mx.example.com"],
    ttl: 0,
  });
  assert.deepEqual(
    outcome({
      answers: [mx("example.com", 10, "a.test", 2 ** 31), mx("example.com", 20, "b.test", 60)],
    }),
    { kind: "mx", hosts: ["a.test", "b.test"], ttl: 0 },
  );
  assert.deepEqual(outcome({ answers: [mx("example.com", 10, "a.test", 2 ** 31 - 1)] }), {
    kind: "mx",
    hosts: ["a.test"],
    ttl: 2 ** 31 - 1,
  });
});

Deno.test("interpretReply: null MX alone, and dropped when mixed with real MX", () => {
  assert.deepEqual(outcome({ answers: [mx("example.com", 0, ".", 3600)] }), {
    kind: "nullmx",
    ttl: 3600,
  });
  assert.deepEqual(
    outcome({ answers: [mx("example.com", 0, ".", 60), mx("example.com", 10, "mx.test", 300)] }),
    { kind: "mx", hosts: ["mx.test"], ttl: 300 },
  );
});

Deno.test("interpretReply: NODATA and NXDOMAIN with min(SOA TTL, MINIMUM), or null", () => {
  assert.deepEqual(outcome({ authorities: [soa("example.com", 3600, 300)] }), {
    kind: "nodata",
    negativeTtl: 300,
  });
  assert.deepEqual(outcome({ authorities: [soa("com", 900, 86400)] }), {
    kind: "nodata",
    negativeTtl: 900,
  });
  assert.deepEqual(outcome({}), { kind: "nodata", negativeTtl: null });
  assert.deepEqual(outcome({ rcode: 3, authorities: [soa("com", 900, 60)] }), {
    kind: "nxdomain",
    negativeTtl: 60,
  });
  assert.deepEqual(outcome({ rcode: 3 }), { kind: "nxdomain", negativeTtl: null });
  // An SOA of an unrelated zone says nothing about this name.
  assert.deepEqual(outcome({ rcode: 3, authorities: [soa("other.org", 5, 5)] }), {
    kind: "nxdomain",
    negativeTtl: null,
  });
  assert.deepEqual(outcome({ authorities: [soa("ample.com", 5, 5)] }), {
    kind: "nodata",
    negativeTtl: null,
  });
});

Deno.test("interpretReply: SERVFAIL, REFUSED and other rcodes are tempfail", () => {
  assert.deepEqual(outcome({ rcode: 2 }), {
    kind: "tempfail",
    reason: "SERVFAIL from 127.0.0.1:53",
    cause: "servfail",
  });
  assert.deepEqual(outcome({ rcode: 5 }), {
    kind: "tempfail",
    reason: "REFUSED from 127.0.0.1:53",
    cause: "refused",
  });
  assert.deepEqual(outcome({ rcode: 4 }), {
    kind: "tempfail",
    reason: "NOTIMP from 127.0.0.1:53",
    cause: "rcode",
  });
  assert.deepEqual(outcome({ rcode: 15 }), {
    kind: "tempfail",
    reason: "RCODE 15 from 127.0.0.1:53",
    cause: "rcode",
  });
});

Deno.test("interpretReply: records about other names are ignored", () => {
  assert.deepEqual(
    outcome({
      answers: [
        mx("evil.example", 0, "attacker.example"),
        mx("example.com.evil", 0, "attacker.example"),
        mx("example.com", 10, "mx.example.com", 500),
        { type: "A", name: "example.com", ttl: 1, class: "IN", data: "192.0.2.1" },
        {
          type: "MX",
          name: "example.com",
          class: "CH",
          data: { preference: 0, exchange: "chaos.example" },
        },
      ],
      additionals: [mx("example.com", 0, "additional.example")],
    }),
    { kind: "mx", hosts: ["mx.example.com"], ttl: 500 },
  );
  // Nothing about our name and no SOA: not a NODATA answer, and so not a "no MX" guess.
  assert.deepEqual(outcome({ answers: [mx("evil.example", 0, "attacker.example")] }), {
    kind: "tempfail",
    reason: "incomplete answer from 127.0.0.1:53: records of other names, no MX and no SOA",
    cause: "malformed",
  });
});

Deno.test("interpretReply: a referral or an unfollowed CNAME is a failure, never NODATA", () => {
  const ns = (name: string): dnsPacket.Answer => ({
    type: "NS",
    name,
    ttl: 518400,
    class: "IN",
    data: "a.root-servers.net",
  });
  // A server that does not recurse answers with NS records only: no answer at all.
  assert.deepEqual(outcome({ authorities: [ns(".")] }), {
    kind: "tempfail",
    reason:
      "incomplete answer from 127.0.0.1:53: a referral (NS records only): is it a recursive resolver?",
    cause: "malformed",
  });
  assert.deepEqual(outcome({ authorities: [ns("com")] }).kind, "tempfail");
  // The alias from a server that does not recurse (RA clear), no SOA: the chain was not followed.
  assert.deepEqual(outcome({ answers: [cname("example.com", "mail.other.net")] }), {
    kind: "tempfail",
    reason:
      "incomplete answer from 127.0.0.1:53: a CNAME not followed (the server does not recurse)",
    cause: "malformed",
  });
  // The same from a resolver (RA set; some send no SOA): it followed the chain to a name without
  // MX, which lasts no longer than the alias.
  const recursive = dnsPacket.RECURSION_AVAILABLE;
  assert.deepEqual(
    outcome({ flags: recursive, answers: [cname("example.com", "mail.other.net", 120)] }),
    { kind: "nodata", negativeTtl: 120 },
  );
  // Records of our (final) name but no MX: NODATA; records of another name: not.
  const a = (name: string): dnsPacket.Answer => ({
    type: "A",
    name,
    ttl: 60,
    class: "IN",
    data: "192.0.2.1",
  });
  assert.deepEqual(outcome({ answers: [a("example.com")] }), { kind: "nodata", negativeTtl: null });
  assert.deepEqual(
    outcome({ flags: recursive, answers: [cname("example.com", "b.test", 120), a("c.test")] })
      .kind,
    "tempfail",
  );
  // NODATA with the zone's SOA beside NS records is still NODATA.
  assert.deepEqual(outcome({ authorities: [soa("example.com", 600, 300), ns("example.com")] }), {
    kind: "nodata",
    negativeTtl: 300,
  });
});

Deno.test("checkReply: a truncated answer cut mid-record is a reply to retry, not malformed", () => {
  // A copy: slices of the Buffer dns-packet returns would share its bytes.
  const full = Uint8Array.from(response({
    answers: Array.from(
      { length: 30 },
      (_, i) => mx("example.com", i, `mx${i}.a-long-name-for-padding.example.net`),
    ),
  }));
  const cut = full.slice(0, 512);
  cut[2] |= 0x02; // TC
  const check = checkReply(cut, QUERY);
  assert.equal(check.kind, "reply");
  if (check.kind !== "reply") return;
  assert.equal(check.reply.truncated, true);
  assert.equal(check.reply.packet, null);
  // Never read as an answer, whole or partial.
  assert.deepEqual(interpretReply(check.reply, { name: QUERY.name, from: FROM }), {
    kind: "tempfail",
    reason: "malformed answer from 127.0.0.1:53: truncated (TC bit set)",
    cause: "malformed",
  });
  // Without TC the same cut packet is malformed.
  assert.equal(checkReply(full.slice(0, 512), QUERY).kind, "malformed");
  // Decodable but truncated: not taken as the whole answer either.
  assert.equal(
    outcome({ flags: 0x0200, answers: [mx("example.com", 0, "mx.test")] }).kind,
    "tempfail",
  );
});

Deno.test("interpretReply: CNAME chains are followed, their TTLs bound the answer", () => {
  assert.deepEqual(
    outcome({
      answers: [
        mx("example.com", 1, "ignored.example"),
        cname("example.com", "Alias.Example.NET.", 100),
        mx("alias.example.net", 99, "wrong.example"),
        cname("alias.example.net", "final.example.org", 200),
        mx("final.example.org", 10, "mx.final.example.org", 300),
      ],
    }),
    { kind: "mx", hosts: ["mx.final.example.org"], ttl: 100 },
  );
  assert.deepEqual(
    outcome({
      rcode: 3,
      answers: [cname("example.com", "gone.test")],
      authorities: [soa("test", 60, 30)],
    }),
    { kind: "nxdomain", negativeTtl: 30 },
  );
  // An SOA of the alias's zone says nothing about the target: the chain was not followed.
  assert.equal(
    outcome({
      answers: [cname("example.com", "a.test")],
      authorities: [soa("example.com", 60, 30)],
    }).kind,
    "tempfail",
  );
  // A negative answer through a CNAME lasts no longer than the alias.
  assert.deepEqual(
    outcome({
      answers: [cname("example.com", "a.test", 20)],
      authorities: [soa("test", 600, 300)],
    }),
    { kind: "nodata", negativeTtl: 20 },
  );
  assert.deepEqual(
    outcome({
      rcode: 3,
      answers: [cname("example.com", "gone.test", 20)],
      authorities: [soa("test", 600, 300)],
    }),
    { kind: "nxdomain", negativeTtl: 20 },
  );
  assert.deepEqual(
    outcome({ rcode: 3, answers: [cname("example.com", "gone.test", 20)] }),
    { kind: "nxdomain", negativeTtl: 20 },
  );
});

Deno.test("interpretReply: CNAME loops and chains over 8 hops are malformed", () => {
  assert.deepEqual(
    outcome({ answers: [cname("example.com", "b.test"), cname("b.test", "EXAMPLE.com")] }),
    {
      kind: "tempfail",
      reason: "malformed answer from 127.0.0.1:53: CNAME loop at example.com",
      cause: "malformed",
    },
  );
  const chain = (hops: number) => {
    const names = ["example.com", ...Array.from({ length: hops }, (_, i) => `c${i}.test`)];
    return [
      ...names.slice(1).map((target, i) => cname(names[i], target)),
      mx(names[hops], 10, "mx.test"),
    ];
  };
  assert.deepEqual(outcome({ answers: chain(8) }), { kind: "mx", hosts: ["mx.test"], ttl: 300 });
  assert.deepEqual(outcome({ answers: chain(9) }), {
    kind: "tempfail",
    reason: "malformed answer from 127.0.0.1:53: more than 8 CNAMEs",
    cause: "malformed",
  });
});

Deno.test("interpretReply: an exchange that is not a host name is malformed", () => {
  assert.deepEqual(outcome({ answers: [mx("example.com", 10, "bad host.test")] }), {
    kind: "tempfail",
    reason: 'malformed answer from 127.0.0.1:53: bad MX exchange "bad host.test"',
    cause: "malformed",
  });
  // dns-packet refuses to decode names over 255 bytes on the wire.
  const long = `${"a".repeat(60)}.`.repeat(5) + "test";
  assert.equal(long.length, 309);
  const check = checkReply(response({ answers: [mx("example.com", 10, long)] }), QUERY);
  assert.deepEqual(check, { kind: "malformed", why: "Cannot decode name (name too long)" });
});
