/**
 * The fake DNS server's reply memo: repeated questions are answered from kept bytes, which must
 * change nothing a test or the bench can observe (IDs, counts, zone changes, per-query replies).
 */

import assert from "node:assert/strict";
import dgram from "node:dgram";
// @ts-types="@types/dns-packet"
import * as dnsPacket from "dns-packet";
import { Buffer } from "node:buffer";
import { encodeMxQuery } from "../lib/dns_wire.ts";
import { type FakeDns, startFakeDns } from "./support/fake_dns.ts";

/** Sends one MX query with `id` over UDP and returns the decoded reply. */
async function ask(fake: FakeDns, name: string, id: number): Promise<dnsPacket.DecodedPacket> {
  const socket = dgram.createSocket("udp4");
  try {
    const reply = await new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no reply within 2 s")), 2000);
      socket.once("message", (message: Uint8Array) => {
        clearTimeout(timer);
        resolve(message);
      });
      socket.send(encodeMxQuery({ id, name }), fake.port, "127.0.0.1");
    });
    return dnsPacket.decode(Buffer.from(reply));
  } finally {
    socket.close();
  }
}

/** The response code, from the low bits of the flags (3 NXDOMAIN, 2 SERVFAIL). */
function rcode(packet: dnsPacket.DecodedPacket): number {
  return (packet.flags ?? 0) & 0xf;
}

function exchanges(packet: dnsPacket.DecodedPacket): string[] {
  return (packet.answers ?? []).flatMap((a) => a.type === "MX" ? [a.data.exchange] : []);
}

Deno.test("fake DNS: a repeated question gets the same answer with its own ID, and is counted", async () => {
  const fake = await startFakeDns({
    zone: { "example.com": { kind: "mx", records: [{ preference: 10, exchange: "mx.a.net" }] } },
  });
  try {
    const first = await ask(fake, "example.com", 0x1111);
    const second = await ask(fake, "example.com", 0x2222);
    assert.equal(first.id, 0x1111);
    assert.equal(second.id, 0x2222);
    assert.deepEqual(exchanges(second), ["mx.a.net"]);
    assert.deepEqual(second.questions, first.questions);
    assert.equal(fake.queriesFor("example.com"), 2);
    assert.equal(fake.queryCount, 2);
  } finally {
    await fake.close();
  }
});

Deno.test("fake DNS: a zone change is answered at once, never from the memo", async () => {
  const fake = await startFakeDns({
    zone: { "example.com": { kind: "mx", records: [{ preference: 10, exchange: "mx.a.net" }] } },
  });
  try {
    assert.deepEqual(exchanges(await ask(fake, "example.com", 1)), ["mx.a.net"]);
    fake.setZone("example.com", {
      kind: "mx",
      records: [{ preference: 10, exchange: "mx.b.net" }],
    });
    assert.deepEqual(exchanges(await ask(fake, "example.com", 2)), ["mx.b.net"]);
    fake.deleteZone("example.com");
    assert.equal(rcode(await ask(fake, "example.com", 3)), 3);
    fake.setDefault({ kind: "servfail" });
    assert.equal(rcode(await ask(fake, "example.com", 4)), 2);
  } finally {
    await fake.close();
  }
});

Deno.test("fake DNS: behaviours that change per query are never answered from the memo", async () => {
  const fake = await startFakeDns({
    zone: {
      "example.com": {
        kind: "perQuery",
        list: [{ kind: "servfail" }, { kind: "mx", records: [{ preference: 1, exchange: "m.x" }] }],
      },
    },
  });
  try {
    assert.equal(rcode(await ask(fake, "example.com", 1)), 2);
    assert.deepEqual(exchanges(await ask(fake, "example.com", 2)), ["m.x"]);
    assert.equal(fake.queriesFor("example.com"), 2);
  } finally {
    await fake.close();
  }
});
