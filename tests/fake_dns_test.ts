/**
 * The fake DNS server's reply memo: repeated questions are answered from kept bytes, which must
 * change nothing a test or the bench can observe (IDs, counts, zone changes, per-query replies).
 */

import assert from "node:assert/strict";
import dgram from "node:dgram";
// @ts-types="@types/dns-packet"
import * as dnsPacket from "dns-packet";
import { Buffer } from "node:buffer";
import { encodeMxQuery } from "../lib/dns/wire.ts";
import {
  type FakeDns,
  type FakeDnsBehaviour,
  startFakeDns,
  tcpMessages,
} from "./support/fake_dns.ts";

/** An MX behaviour with one record. */
function mx(exchange: string, preference = 10): FakeDnsBehaviour {
  return { kind: "mx", records: [{ preference, exchange }] };
}

/** Starts a fake server with `zone`, runs `body`, closes the server. */
async function withFake(
  zone: Record<string, FakeDnsBehaviour>,
  body: (fake: FakeDns) => Promise<void>,
): Promise<void> {
  const fake = await startFakeDns({ zone });
  try {
    await body(fake);
  } finally {
    await fake.close();
  }
}

/** Sends one MX query with `id` over UDP and returns the decoded reply. */
async function ask(fake: FakeDns, name: string, id: number): Promise<dnsPacket.DecodedPacket> {
  return dnsPacket.decode(Buffer.from(await askBytes(fake, name, id)));
}

/** Sends one MX query with `id` over UDP and returns the reply's bytes. */
async function askBytes(fake: FakeDns, name: string, id: number): Promise<Uint8Array> {
  const socket = dgram.createSocket("udp4");
  try {
    return await new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no reply within 2 s")), 2000);
      socket.once("message", (message: Uint8Array) => {
        clearTimeout(timer);
        resolve(message);
      });
      socket.send(encodeMxQuery({ id, name }), fake.port, "127.0.0.1");
    });
  } finally {
    socket.close();
  }
}

/** Sends one MX query with `id` over TCP (length-prefixed) and returns the decoded reply. */
async function askTcp(fake: FakeDns, name: string, id: number): Promise<dnsPacket.DecodedPacket> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: fake.port });
  try {
    const query = encodeMxQuery({ id, name });
    const frame = new Uint8Array(query.length + 2);
    frame[0] = query.length >> 8;
    frame[1] = query.length & 0xff;
    frame.set(query, 2);
    await conn.write(frame);
    for await (const reply of tcpMessages(conn)) return dnsPacket.decode(Buffer.from(reply));
    throw new Error("connection closed before the reply");
  } finally {
    conn.close();
  }
}

/** Whether the TC (truncated) bit is set. */
function truncated(packet: dnsPacket.DecodedPacket): boolean {
  return ((packet.flags ?? 0) & dnsPacket.TRUNCATED_RESPONSE) !== 0;
}

/** The response code, from the low bits of the flags (3 NXDOMAIN, 2 SERVFAIL). */
function rcode(packet: dnsPacket.DecodedPacket): number {
  return (packet.flags ?? 0) & 0xf;
}

function exchanges(packet: dnsPacket.DecodedPacket): string[] {
  return (packet.answers ?? []).flatMap((a) => a.type === "MX" ? [a.data.exchange] : []);
}

Deno.test("fake DNS: a repeated question gets the same answer with its own ID, and is counted", async () => {
  await withFake({
    "example.com": mx("mx.a.net"),
  }, async (fake) => {
    const first = await ask(fake, "example.com", 0x1111);
    const second = await ask(fake, "example.com", 0x2222);
    assert.equal(first.id, 0x1111);
    assert.equal(second.id, 0x2222);
    assert.deepEqual(exchanges(second), ["mx.a.net"]);
    assert.deepEqual(second.questions, first.questions);
    assert.equal(fake.queriesFor("example.com"), 2);
    assert.equal(fake.queryCount, 2);
  });
});

Deno.test("fake DNS: a zone change is answered at once, never from the memo", async () => {
  await withFake({
    "example.com": mx("mx.a.net"),
  }, async (fake) => {
    assert.deepEqual(exchanges(await ask(fake, "example.com", 1)), ["mx.a.net"]);
    fake.setZone("example.com", mx("mx.b.net"));
    assert.deepEqual(exchanges(await ask(fake, "example.com", 2)), ["mx.b.net"]);
    fake.deleteZone("example.com");
    assert.equal(rcode(await ask(fake, "example.com", 3)), 3);
    fake.setDefault({ kind: "servfail" });
    assert.equal(rcode(await ask(fake, "example.com", 4)), 2);
  });
});

Deno.test("fake DNS: behaviours that change per query are never answered from the memo", async () => {
  await withFake({
    "example.com": {
      kind: "perQuery",
      list: [{ kind: "servfail" }, mx("m.x", 1)],
    },
  }, async (fake) => {
    assert.equal(rcode(await ask(fake, "example.com", 1)), 2);
    assert.deepEqual(exchanges(await ask(fake, "example.com", 2)), ["m.x"]);
    assert.equal(fake.queriesFor("example.com"), 2);
  });
});

Deno.test("fake DNS: a whole reply serves both transports; a cut one never answers over TCP", async () => {
  const many = Array.from({ length: 80 }, (_, i) => ({
    preference: i,
    exchange: `mx${i}.a-rather-long-mail-exchanger-name.example.net`,
  }));
  await withFake({
    "small.example": mx("mx.a.net"),
    "big.example": { kind: "mx", records: many },
    "cut.example": {
      kind: "truncate",
      then: mx("m.tcp", 1),
    },
  }, async (fake) => {
    // Asked over UDP first, then over TCP (and the other way round): the same answer.
    assert.deepEqual(exchanges(await ask(fake, "small.example", 1)), ["mx.a.net"]);
    assert.deepEqual(exchanges(await askTcp(fake, "small.example", 2)), ["mx.a.net"]);
    // Too big for UDP: truncated there, whole over TCP, each time.
    for (let round = 0; round < 2; round++) {
      const udp = await ask(fake, "big.example", 10 + round);
      assert.ok(truncated(udp));
      assert.equal(exchanges(udp).length, 0);
      const tcp = await askTcp(fake, "big.example", 20 + round);
      assert.ok(!truncated(tcp));
      assert.equal(exchanges(tcp).length, 80);
    }
    // A behaviour that truncates over UDP only.
    for (let round = 0; round < 2; round++) {
      assert.ok(truncated(await ask(fake, "cut.example", 30 + round)));
      assert.deepEqual(exchanges(await askTcp(fake, "cut.example", 40 + round)), ["m.tcp"]);
    }
    assert.equal(fake.queriesFor("big.example"), 4);
  });
});

Deno.test("fake DNS: a CNAME's answer follows its target's new behaviour at once", async () => {
  await withFake({
    "alias.example": { kind: "cname", target: "real.example" },
    "real.example": mx("mx.old.net"),
  }, async (fake) => {
    assert.deepEqual(exchanges(await ask(fake, "alias.example", 1)), ["mx.old.net"]);
    fake.setZone("real.example", mx("mx.new.net"));
    assert.deepEqual(exchanges(await ask(fake, "alias.example", 2)), ["mx.new.net"]);
  });
});

Deno.test("fake DNS: records of any class, owner and section, as given, over UDP and TCP", async () => {
  const soaData = { mname: "ns.example.org", rname: "hostmaster.example.org", minimum: 60 };
  await withFake({
    "chaos.example": {
      kind: "records",
      answers: [
        {
          type: "MX",
          name: "chaos.example",
          class: "CH",
          data: { preference: 1, exchange: "a.x" },
        },
        {
          type: "MX",
          name: "chaos.example",
          flush: true,
          data: { preference: 2, exchange: "b.x" },
        },
        { type: "MX", name: "other.example", data: { preference: 3, exchange: "c.x" } },
      ],
      authorities: [
        { type: "A", name: "other.example", data: "192.0.2.1" },
        { type: "SOA", name: ".", data: soaData },
      ],
    },
    "gone.example": {
      kind: "records",
      rcode: 3,
      authorities: [{ type: "SOA", name: ".", data: soaData }],
    },
  }, async (fake) => {
    for (
      const reply of [await ask(fake, "chaos.example", 1), await askTcp(fake, "chaos.example", 2)]
    ) {
      assert.equal(rcode(reply), 0);
      assert.deepEqual(
        (reply.answers ?? []).map((
          a,
        ) => [a.name, a.type !== "OPT" && a.class, a.type !== "OPT" && a.flush]),
        [["chaos.example", "CH", false], ["chaos.example", "IN", true], [
          "other.example",
          "IN",
          false,
        ]],
      );
      assert.deepEqual(exchanges(reply), ["a.x", "b.x", "c.x"]);
      assert.deepEqual((reply.authorities ?? []).map((a) => [a.type, a.name]), [[
        "A",
        "other.example",
      ], ["SOA", "."]]);
    }
    const gone = await ask(fake, "gone.example", 3);
    assert.equal(rcode(gone), 3);
    assert.deepEqual(gone.answers, []);
  });
});

Deno.test("fake DNS: an exchange with a space or a control character is sent as that byte", async () => {
  await withFake({
    "odd.example": { kind: "mx", records: [{ preference: 20, exchange: "backup mx.ex\x01ample" }] },
  }, async (fake) => {
    const bytes = await askBytes(fake, "odd.example", 1);
    const label = (text: string) => [text.length, ...new TextEncoder().encode(text)];
    const wire = [...label("backup mx"), ...label("ex\x01ample"), 0];
    const at = bytes.findIndex((_, i) => wire.every((byte, j) => bytes[i + j] === byte));
    assert.ok(at > 0, "the exchange's labels, byte for byte");
    assert.deepEqual(exchanges(dnsPacket.decode(Buffer.from(bytes))), ["backup mx.ex\x01ample"]);
  });
});
