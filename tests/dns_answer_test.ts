// @ts-types="@types/dns-packet"
import * as dnsPacket from "dns-packet";
import assert from "node:assert/strict";
import { usableTtl } from "../lib/dns_answer.ts";
import { checkReply } from "../lib/dns_wire.ts";
import { cname, mx, outcome, QUERY, response, soa } from "./support/dns_packets.ts";

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
  // MX. Without an SOA it has no negative TTL (the cache keeps it for --min-ttl).
  const recursive = dnsPacket.RECURSION_AVAILABLE;
  assert.deepEqual(
    outcome({ flags: recursive, answers: [cname("example.com", "mail.other.net", 86400)] }),
    { kind: "nodata", negativeTtl: null },
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
