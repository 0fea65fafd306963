// @ts-types="@types/dns-packet"
import * as dnsPacket from "dns-packet";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { interpretReply } from "../../lib/dns/answer.ts";
import {
  checkReply,
  encodeMxQuery,
  rcodeLabel,
  refusesEdns,
  toQueryName,
} from "../../lib/dns/wire.ts";
import { FROM, mx, outcome, type Parts, QUERY, response } from "../support/dns_packets.ts";
import { EDNS_OPT } from "../support/fake_dns.ts";

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

Deno.test("the liveness probe `. NS`: dns-packet's bytes, and only an NS answer about the root matches", () => {
  const probe = { id: 0x0707, name: ".", type: "NS" as const, edns: false };
  const expected = dnsPacket.encode({
    type: "query",
    id: probe.id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: "NS", class: "IN", name: "." }],
  });
  assert.deepEqual([...encodeMxQuery(probe)], [...expected]);
  const answer = (type: "NS" | "MX", name: string) =>
    new Uint8Array(dnsPacket.encode({
      type: "response",
      id: probe.id,
      flags: 3, // NXDOMAIN: any rcode is an answer
      questions: [{ type, class: "IN", name }],
    }));
  assert.equal(checkReply(answer("NS", "."), probe).kind, "reply");
  assert.deepEqual(checkReply(answer("MX", "."), probe), { kind: "ignore", why: "wrong question" });
  assert.deepEqual(checkReply(answer("NS", "example.com"), probe), {
    kind: "ignore",
    why: "wrong question",
  });
  assert.deepEqual(checkReply(answer("NS", "."), { ...probe, type: undefined }), {
    kind: "ignore",
    why: "wrong question",
  });
});

Deno.test("refusesEdns: FORMERR without an OPT record only", () => {
  const reply = (parts: Parts) => {
    const check = checkReply(response(parts), QUERY);
    if (check.kind !== "reply") throw new Error(JSON.stringify(check));
    return check.reply;
  };
  assert.equal(refusesEdns(reply({ rcode: 1 })), true);
  assert.equal(refusesEdns(reply({ rcode: 1, additionals: [EDNS_OPT] })), false);
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
