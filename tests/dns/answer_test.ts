// @ts-types="@types/dns-packet"
import * as dnsPacket from "dns-packet";
import { Buffer } from "node:buffer";
import assert from "node:assert/strict";
import { interpretReply, usableTtl } from "../../lib/dns/answer.ts";
import { checkReply } from "../../lib/dns/wire.ts";
import { cname, FROM, mx, outcome, QUERY, record, response, soa } from "../support/dns_packets.ts";

Deno.test("usableTtl: top bit set counts as 0 (RFC 2181 §8)", () => {
  assert.equal(usableTtl(2 ** 31 - 1), 2 ** 31 - 1);
  assert.equal(usableTtl(2 ** 31), 0);
  assert.equal(usableTtl(2 ** 32 - 1), 0);
  assert.equal(usableTtl(undefined), 0);
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

Deno.test("interpretReply: the primary MX hosts are those of the lowest preference", () => {
  const answer = (...preferences: number[]) =>
    outcome({
      answers: preferences.map((preference, i) => mx("example.com", preference, `mx${i}.test`)),
    });
  assert.deepEqual(answer(10, 20), { kind: "mx", hosts: ["mx0.test", "mx1.test"], ttl: 300 });
  const tie = answer(20, 10, 10);
  assert.ok(tie.kind === "mx");
  assert.deepEqual([tie.hosts, tie.primaryCount], [["mx1.test", "mx2.test", "mx0.test"], 2]);
  // All at one preference, more than are kept: every kept host is primary.
  const many = answer(...Array.from({ length: 20 }, () => 10));
  assert.ok(many.kind === "mx");
  assert.deepEqual([many.hosts.length, many.primaryCount], [16, 16]);
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
  // The root's SOA holds every name.
  assert.deepEqual(outcome({ authorities: [soa(".", 86400, 3600)] }), {
    kind: "nodata",
    negativeTtl: 3600,
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

const ns = (name: string) => record("NS", name, "a.root-servers.net");
const a = (name: string) => record("A", name, "192.0.2.1");
const recursive = dnsPacket.RECURSION_AVAILABLE;

/** The tempfail of a reply with a record the question does not account for. */
function unexplained(why: string) {
  return {
    kind: "tempfail",
    reason: `unexplained answer from 127.0.0.1:53: ${why}`,
    cause: "malformed",
  };
}

/** The tempfail of a reply without MX that does not prove NODATA. */
function incomplete(why: string) {
  return {
    kind: "tempfail",
    reason: `incomplete answer from 127.0.0.1:53: ${why}`,
    cause: "malformed",
  };
}

Deno.test("interpretReply: a record the question does not account for fails the reply, never 'no MX'", () => {
  const ours = mx("example.com", 10, "x.mail.protection.outlook.com");
  // MX of class CH, and with the mDNS cache-flush bit (class 0x8001): alone and beside ours.
  const chaos = record("MX", "example.com", { preference: 0, exchange: "c.test" }, { class: "CH" });
  const flushed = record("MX", "example.com", { preference: 0, exchange: "f.test" }, {
    flush: true,
  });
  for (const answers of [[chaos], [ours, chaos]]) {
    assert.deepEqual(
      outcome({ answers }),
      unexplained("MX record of example.com of class CH"),
    );
  }
  for (const answers of [[flushed], [ours, flushed]]) {
    assert.deepEqual(
      outcome({ answers }),
      unexplained("MX record of example.com with the mDNS cache-flush bit set"),
    );
  }
  // An MX of another name, with the root's SOA (an ancestor of every name) or beside ours.
  const other = mx("evil.example", 0, "attacker.example");
  for (
    const parts of [{ answers: [other], authorities: [soa(".", 60, 60)] }, {
      answers: [other, ours],
    }]
  ) {
    assert.deepEqual(
      outcome(parts),
      unexplained("MX record of evil.example, a name not asked about"),
    );
  }
  assert.deepEqual(
    outcome({ answers: [ours, mx("example.com.evil", 0, "attacker.example")] }),
    unexplained("MX record of example.com.evil, a name not asked about"),
  );
  // Another type, even of our name.
  assert.deepEqual(
    outcome({ answers: [ours, a("example.com")] }),
    unexplained("A record of example.com, a type not asked about"),
  );
  assert.deepEqual(
    outcome({ answers: [a("example.com")], authorities: [soa("example.com", 60, 60)] }),
    unexplained("A record of example.com, a type not asked about"),
  );
  // A hostile owner name is shown in zone-file form, never as raw bytes.
  assert.deepEqual(
    outcome({ answers: [mx("x\ny.test", 0, "a.test")] }),
    unexplained("MX record of x\\010y.test, a name not asked about"),
  );
  // The additional section (OPT, glue) is not judged.
  assert.deepEqual(
    outcome({
      answers: [ours],
      additionals: [mx("example.com", 0, "additional.example"), a("elsewhere.test")],
    }),
    { kind: "mx", hosts: ["x.mail.protection.outlook.com"], ttl: 300 },
  );
});

Deno.test("interpretReply: NODATA only with the SOA of the zone that holds the name, or no records", () => {
  // The SOA of an unrelated zone, or of a name that only ends like ours.
  assert.deepEqual(
    outcome({ authorities: [soa("example.org", 60, 60)] }),
    incomplete(
      "no MX and no SOA of the zone of example.com; in the authority section: SOA record of example.org",
    ),
  );
  assert.equal(outcome({ authorities: [soa("ample.com", 5, 5)] }).kind, "tempfail");
  // An SOA of class CH, or with the flush bit, is not the zone's.
  const chaosSoa = { ...soa("example.com", 60, 60), class: "CH" } as dnsPacket.Answer;
  assert.equal(outcome({ authorities: [chaosSoa] }).kind, "tempfail");
  // Only an A record of another name in the authority section.
  assert.deepEqual(
    outcome({ authorities: [a("other.test")] }),
    incomplete(
      "no MX and no SOA of the zone of example.com; in the authority section: A record of other.test",
    ),
  );
  // The zone's SOA beside other authority records proves it.
  assert.deepEqual(
    outcome({ authorities: [a("other.test"), soa("com", 60, 30)] }),
    { kind: "nodata", negativeTtl: 30 },
  );
  // No records at all, as dnsmasq answers its own names.
  assert.deepEqual(outcome({}), { kind: "nodata", negativeTtl: null });
});

Deno.test("interpretReply: DNAME and RRSIG records of the chain are skipped", () => {
  const rrsig = (name: string, typeCovered: string) =>
    record("RRSIG", name, {
      typeCovered,
      algorithm: 13,
      labels: 2,
      originalTTL: 300,
      expiration: 0,
      inception: 0,
      keyTag: 1,
      signersName: "example.com",
      signature: Buffer.alloc(8),
    });
  assert.deepEqual(
    outcome({
      answers: [
        record("DNAME", "com", "net"),
        rrsig("com", "DNAME"),
        cname("example.com", "example.net", 60),
        rrsig("example.net", "MX"),
        mx("example.net", 10, "mx.example.net"),
      ],
    }),
    { kind: "mx", hosts: ["mx.example.net"], ttl: 60 },
  );
  // The same of another name answer another question.
  assert.deepEqual(
    outcome({ answers: [rrsig("other.test", "MX"), mx("example.com", 10, "mx.test")] }),
    unexplained("RRSIG record of other.test, a name not asked about"),
  );
  assert.deepEqual(
    outcome({ answers: [record("DNAME", "org", "net"), mx("example.com", 10, "mx.test")] }),
    unexplained("DNAME record of org, a name not asked about"),
  );
});

Deno.test("interpretReply: NXDOMAIN with records beyond its CNAME chain is a failure", () => {
  assert.deepEqual(
    outcome({ rcode: 3, answers: [mx("other.test", 10, "mx.test")] }),
    unexplained("MX record of other.test, a name not asked about"),
  );
  // An MX of the name it says does not exist contradicts it.
  assert.deepEqual(
    outcome({ rcode: 3, answers: [mx("example.com", 10, "mx.test")] }),
    unexplained("MX record of example.com in an NXDOMAIN reply"),
  );
  assert.deepEqual(
    outcome({ rcode: 3, answers: [cname("example.com", "gone.test", 20)] }),
    { kind: "nxdomain", negativeTtl: null },
  );
});

Deno.test("interpretReply: a referral or a CNAME without its target's SOA is a failure, never NODATA", () => {
  // A server that does not recurse answers with NS records only: no answer at all.
  assert.deepEqual(
    outcome({ authorities: [ns(".")] }),
    incomplete("a referral (NS records only): is it a recursive resolver?"),
  );
  assert.deepEqual(outcome({ authorities: [ns("com")] }).kind, "tempfail");
  // The alias without the SOA of the target's zone, whether the server recurses (RA) or not:
  // nothing proves the target has no MX.
  for (const flags of [0, recursive]) {
    assert.deepEqual(
      outcome({ flags, answers: [cname("example.com", "mail.other.net", 86400)] }),
      incomplete("no MX and no SOA of the zone of mail.other.net, the CNAME target"),
    );
  }
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
    { kind: "nxdomain", negativeTtl: null },
  );
});

Deno.test("interpretReply: CNAME loops and chains over 16 hops are malformed", () => {
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
  // dnspython, which the original used, follows 16: a chain it followed is followed here too.
  assert.deepEqual(outcome({ answers: chain(16) }), {
    kind: "mx",
    hosts: ["mx.test"],
    ttl: 300,
  });
  assert.deepEqual(outcome({ answers: chain(17) }), {
    kind: "tempfail",
    reason: "malformed answer from 127.0.0.1:53: more than 16 CNAMEs",
    cause: "malformed",
  });
});

Deno.test("interpretReply: exchanges that are not host names are skipped, the rest decide", () => {
  assert.deepEqual(
    outcome({
      answers: [
        mx("example.com", 10, "x.mail.protection.outlook.com", 300),
        mx("example.com", 20, "backup mx.example", 60),
        mx("example.com", 30, "-lead.example"),
        mx("example.com", 40, "ctl\u0001.example"),
        mx("example.com", 50, "b\\ack.example"),
        mx("example.com", 60, "b.example"),
      ],
    }),
    {
      kind: "mx",
      hosts: ["x.mail.protection.outlook.com", "b.example"],
      ttl: 60,
      skipped: ["backup\\032mx.example", "-lead.example", "ctl\\001.example", "b\\092ack.example"],
    },
  );
  // A byte outside UTF-8 in the exchange (0xff) is skipped as well.
  const bytes = response({
    answers: [mx("example.com", 10, "a.test"), mx("example.com", 20, "bzd.test")],
  });
  const at = bytes.lastIndexOf(0x7a); // the z of bzd
  bytes[at] = 0xff;
  const check = checkReply(bytes, QUERY);
  assert.equal(check.kind, "reply");
  if (check.kind !== "reply") return;
  assert.deepEqual(interpretReply(check.reply, { name: QUERY.name, from: FROM }), {
    kind: "mx",
    hosts: ["a.test"],
    ttl: 300,
    skipped: ["b\\239\\191\\189d.test"],
  });
});

Deno.test("interpretReply: with no usable exchange left the reply is malformed", () => {
  assert.deepEqual(outcome({ answers: [mx("example.com", 10, "bad host.test")] }), {
    kind: "tempfail",
    reason: "malformed answer from 127.0.0.1:53: no MX exchange is a host name (bad\\032host.test)",
    cause: "malformed",
  });
  // A null MX beside exchanges that are not host names is not a null MX: no host is left.
  assert.deepEqual(
    outcome({ answers: [mx("example.com", 0, "."), mx("example.com", 10, "a b.test")] }).kind,
    "tempfail",
  );
  // dns-packet refuses to decode names over 255 bytes on the wire.
  const long = `${"a".repeat(60)}.`.repeat(5) + "test";
  assert.equal(long.length, 309);
  const check = checkReply(response({ answers: [mx("example.com", 10, long)] }), QUERY);
  assert.deepEqual(check, { kind: "malformed", why: "Cannot decode name (name too long)" });
});
