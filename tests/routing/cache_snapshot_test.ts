/**
 * The cache snapshot format: what goes in comes out, and every way a file can be damaged or
 * forged is refused with the line and the reason, never thrown.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeSnapshot,
  encodeSnapshot,
  isCachedDomain,
  SNAPSHOT_MAX_HOSTS,
  snapshotByteLimit,
} from "../../lib/routing/cache_snapshot.ts";
import { domainFromKey } from "../../lib/routing/keys.ts";
import type { SavedEntry } from "../../lib/routing/cache.ts";
import { MAX_MX_HOSTS } from "../../lib/dns/answer.ts";

const T = 1_718_000_000_000;
const BOUNDS = { maxEntries: 100_000, maxBytes: snapshotByteLimit(100_000) };

/** One entry of every kind and shape. */
const ENTRIES: SavedEntry[] = [
  {
    domain: "contoso.com",
    freshUntil: T,
    outcome: { kind: "mx", hosts: ["contoso-com.mail.protection.outlook.com"], ttl: 3600 },
  },
  {
    domain: "gmail.com",
    freshUntil: T + 1,
    outcome: {
      kind: "mx",
      hosts: ["a.gmail-smtp-in.l.google.com", "b.gmail-smtp-in.l.google.com", "c.example"],
      ttl: 0,
      primaryCount: 2,
    },
  },
  { domain: "nomail.example", freshUntil: T + 2, outcome: { kind: "nullmx", ttl: 2 ** 31 - 1 } },
  { domain: "plain.example", freshUntil: T + 3, outcome: { kind: "nodata", negativeTtl: null } },
  { domain: "gone.example", freshUntil: T + 4, outcome: { kind: "nxdomain", negativeTtl: 900 } },
  {
    domain: "xn--mller-kva.example",
    freshUntil: T + 5,
    outcome: { kind: "mx", hosts: ["_mx.under_score.example"], ttl: 60 },
  },
  { domain: "localdomain", freshUntil: T + 6, outcome: { kind: "nodata", negativeTtl: 0 } },
];

function encode(entries: SavedEntry[] = ENTRIES): string {
  return encodeSnapshot(entries, BOUNDS).text;
}

function decode(text: string, maxEntries = 100_000) {
  return decodeSnapshot(text, { maxEntries });
}

/** Asserts the text is refused, on `line` (null: the file as a whole), with a message matching. */
function assertRefused(text: string, line: number | null, error: RegExp): void {
  const decoded = decode(text);
  assert.equal(decoded.ok, false, `accepted: ${text.slice(0, 300)}`);
  if (decoded.ok) return;
  assert.equal(decoded.error.line, line, decoded.error.message);
  assert.match(decoded.error.message, error);
}

/** A valid file with one entry line replaced by `line`. */
function withLine(line: string): string {
  return ["postfix-mx-pattern-router cache 1", line, "end 1", ""].join("\n");
}

Deno.test("snapshot: every kind of outcome round-trips, in the order given", () => {
  const text = encode();
  const decoded = decode(text);
  assert.ok(decoded.ok, !decoded.ok ? decoded.error.message : "");
  assert.deepEqual(decoded.value, ENTRIES);
});

Deno.test("snapshot: the file is a header, one JSON object per entry, and a count", () => {
  const lines = encode(ENTRIES.slice(0, 2)).split("\n");
  assert.deepEqual(lines, [
    "postfix-mx-pattern-router cache 1",
    '{"d":"contoso.com","u":1718000000000,"k":"mx","h":["contoso-com.mail.protection.outlook.com"],"t":3600}',
    '{"d":"gmail.com","u":1718000000001,"k":"mx","h":["a.gmail-smtp-in.l.google.com","b.gmail-smtp-in.l.google.com","c.example"],"t":0,"p":2}',
    "end 2",
    "",
  ]);
  assert.equal(encode([]), "postfix-mx-pattern-router cache 1\nend 0\n");
  assert.deepEqual(decode(encode([])), { ok: true, value: [] });
});

Deno.test("snapshot: the debug-only list of skipped exchanges is not kept", () => {
  const entry: SavedEntry = {
    domain: "a.example",
    freshUntil: T + 0.7,
    outcome: { kind: "mx", hosts: ["mx.a.example"], ttl: 5, skipped: ["bad\\032host"] },
  };
  const decoded = decode(encode([entry]));
  assert.ok(decoded.ok);
  assert.deepEqual(decoded.value, [
    // Whole milliseconds, never later than the cache said.
    {
      domain: "a.example",
      freshUntil: T,
      outcome: { kind: "mx", hosts: ["mx.a.example"], ttl: 5 },
    },
  ]);
});

Deno.test("snapshot: encoding stops at --cache-size entries and at the byte limit", () => {
  const many: SavedEntry[] = Array.from({ length: 10 }, (_, i) => ({
    domain: `d${i}.example`,
    freshUntil: T,
    outcome: { kind: "nxdomain", negativeTtl: 60 },
  }));
  const byCount = encodeSnapshot(many, { maxEntries: 4, maxBytes: BOUNDS.maxBytes });
  assert.deepEqual([byCount.written, byCount.omitted], [4, 6]);
  const kept = decode(byCount.text);
  assert.ok(kept.ok);
  assert.deepEqual(kept.value.map((e) => e.domain), [
    "d0.example",
    "d1.example",
    "d2.example",
    "d3.example",
  ]);

  const lineBytes = JSON.stringify({ d: "d0.example", u: T, k: "nxdomain", t: 60 }).length + 1;
  const header = "postfix-mx-pattern-router cache 1".length + 16;
  const byBytes = encodeSnapshot(many, { maxEntries: 100, maxBytes: header + 3 * lineBytes });
  assert.deepEqual([byBytes.written, byBytes.omitted], [3, 7]);
  assert.ok(byBytes.text.length <= header + 3 * lineBytes);
  assert.ok(decode(byBytes.text).ok);
});

Deno.test("snapshot: an entry that would not decode is left out, the rest is written", () => {
  const bad: SavedEntry = {
    domain: "evil.example",
    freshUntil: T,
    outcome: { kind: "mx", hosts: ["bad host.example"], ttl: 60 },
  };
  const encoded = encodeSnapshot([bad, ENTRIES[0]], BOUNDS);
  assert.deepEqual([encoded.written, encoded.omitted], [1, 1]);
  const decoded = decode(encoded.text);
  assert.ok(decoded.ok);
  assert.deepEqual(decoded.value, [ENTRIES[0]]);
});

Deno.test("snapshot: decoding keeps the first --cache-size entries (the most recently used)", () => {
  const decoded = decode(encode(), 2);
  assert.ok(decoded.ok);
  assert.deepEqual(decoded.value, ENTRIES.slice(0, 2));
});

Deno.test("snapshot: a file that is not a snapshot, or of another version, is refused", () => {
  assertRefused("", 1, /not a cache snapshot/);
  assertRefused("hello\n", 1, /not a cache snapshot/);
  assertRefused(encode().replace("router cache", "router cash"), 1, /not a cache snapshot/);
  assertRefused(encode().replace("cache 1", "cache 2"), 1, /format version "2", .*reads version 1/);
  assertRefused(encode().replace("cache 1", "cache 1.0"), 1, /format version "1.0"/);
  assertRefused(encode().replace("cache 1", "cache"), 1, /not a cache snapshot/);
});

Deno.test("snapshot: a truncated file is refused wherever it was cut", () => {
  const text = encode();
  for (let cut = 0; cut < text.length; cut++) {
    const decoded = decode(text.slice(0, cut));
    assert.equal(decoded.ok, false, `cut at ${cut} accepted`);
  }
  assertRefused(text.slice(0, -1), null, /truncated: no "end COUNT" line/);
  // Cut at a line boundary: the entry lines are whole, the trailer is missing.
  const lines = text.split("\n");
  assertRefused(lines.slice(0, 3).join("\n") + "\n", null, /truncated/);
  // Lines lost in the middle, trailer intact.
  const spliced = [...lines.slice(0, 2), ...lines.slice(4)].join("\n");
  assertRefused(
    spliced,
    lines.length - 3,
    /truncated or spliced: 5 entries, but the end line says 7/,
  );
  assertRefused(`${text}{"d":"more.example"}`, null, /truncated/); // something after the end
  assertRefused(text.replace("end 7", "end 07"), null, /truncated/);
  assertRefused(text.replace("end 7", "end 7 "), null, /truncated/);
});

Deno.test("snapshot: a line that is not JSON, or not an object, is refused with its number", () => {
  const lines = encode().split("\n");
  lines[3] = lines[3].slice(0, -1);
  assertRefused(lines.join("\n"), 4, /not valid JSON/);
  assertRefused(withLine(""), 2, /not valid JSON/);
  assertRefused(withLine("[1,2]"), 2, /not a JSON object/);
  assertRefused(withLine("null"), 2, /not a JSON object/);
  assertRefused(withLine('"contoso.com"'), 2, /not a JSON object/);
});

Deno.test("snapshot: every field is checked", () => {
  const good = { d: "a.example", u: T, k: "mx", h: ["mx.a.example"], t: 60 };
  const cases: [Record<string, unknown>, RegExp][] = [
    // kind: exhaustive, failures are never saved
    [{ ...good, k: "tempfail" }, /field "k": "tempfail" is not mx, nullmx, nodata or nxdomain/],
    [{ ...good, k: "MX" }, /field "k"/],
    [{ ...good, k: undefined }, /field "k": undefined/],
    [{ ...good, k: "toString" }, /field "k"/],
    // fields: none missing, none more
    [{ d: good.d, u: good.u, k: "mx", t: 60 }, /field "h" is missing/],
    [{ d: good.d, k: "nxdomain", t: 60 }, /field "u" is missing/],
    [{ ...good, x: 1 }, /field "x" does not belong to a mx entry/],
    [{ d: good.d, u: T, k: "nullmx", t: 60, h: ["mx.example"] }, /field "h" does not belong/],
    [{ d: good.d, u: T, k: "nodata", t: 60, p: 1 }, /field "p" does not belong/],
    // domain: as the cache keeps one
    [{ ...good, d: "A.example" }, /field "d": "A.example" is not a domain/],
    [{ ...good, d: "a.example." }, /field "d"/],
    [{ ...good, d: "user@a.example" }, /field "d"/],
    [{ ...good, d: "müller.example" }, /field "d"/],
    [{ ...good, d: "a..example" }, /field "d"/],
    [{ ...good, d: "192.0.2.1" }, /field "d"/],
    [{ ...good, d: `${"a".repeat(64)}.example` }, /field "d"/],
    [{ ...good, d: "" }, /field "d"/],
    [{ ...good, d: 7 }, /field "d": 7 is not a string/],
    // fresh-until: whole epoch milliseconds
    [{ ...good, u: -1 }, /field "u": -1 is not a time/],
    [{ ...good, u: 0 }, /field "u"/],
    [{ ...good, u: T + 0.5 }, /field "u"/],
    [{ ...good, u: "1718000000000" }, /field "u"/],
    [{ ...good, u: 2 ** 53 }, /field "u"/],
    // TTL: 31-bit whole seconds; null only for negative answers
    [{ ...good, t: -1 }, /field "t": -1 is not a TTL from 0 to 2147483647$/],
    [{ ...good, t: 2 ** 31 }, /field "t"/],
    [{ ...good, t: 1.5 }, /field "t"/],
    [{ ...good, t: null }, /field "t": null is not a TTL/],
    [{ d: good.d, u: T, k: "nxdomain", t: "60" }, /field "t": "60" is not a TTL .* or null/],
    // hosts: 1 to 16 host names
    [{ ...good, h: [] }, /field "h": not a list of 1 to 16 host names/],
    [{ ...good, h: "mx.a.example" }, /field "h": not a list/],
    [{ ...good, h: Array(17).fill("mx.example") }, /field "h": not a list/],
    [{ ...good, h: ["mx.example", "bad host"] }, /field "h": "bad host" is not a host name/],
    [{ ...good, h: ["MX.example"] }, /field "h"/],
    [{ ...good, h: ["mx.example."] }, /field "h"/],
    [{ ...good, h: ["-mx.example"] }, /field "h"/],
    [{ ...good, h: [`${"a".repeat(250)}.example`] }, /field "h"/],
    [{ ...good, h: ["mx\nforged log line"] }, /field "h": "mx\\nforged log line"/],
    [{ ...good, h: [7] }, /field "h": 7/],
    // primary count: 1 to the number of hosts
    [{ ...good, p: 0 }, /field "p": 0 is not a count from 1 to 1/],
    [{ ...good, p: 2 }, /field "p"/],
    [{ ...good, p: 1.5 }, /field "p"/],
    [{ ...good, p: null }, /field "p"/],
  ];
  assert.ok(decode(withLine(JSON.stringify(good))).ok, "the base case is valid");
  for (const [record, error] of cases) {
    assertRefused(withLine(JSON.stringify(record)), 2, error);
  }
});

Deno.test("snapshot: a domain listed twice is refused", () => {
  const text = [
    "postfix-mx-pattern-router cache 1",
    JSON.stringify({ d: "a.example", u: T, k: "nxdomain", t: 60 }),
    JSON.stringify({ d: "a.example", u: T, k: "nodata", t: 60 }),
    "end 2",
    "",
  ].join("\n");
  assertRefused(text, 3, /domain "a.example" is listed twice/);
});

Deno.test("snapshot: a message quotes at most 60 characters of a hostile value", () => {
  const decoded = decode(
    withLine(JSON.stringify({ d: "x".repeat(10_000), u: T, k: "nullmx", t: 1 })),
  );
  assert.ok(!decoded.ok);
  assert.ok(decoded.error.message.length < 120, decoded.error.message);
});

Deno.test("snapshot: the host limit is the resolver's, and the byte limit scales with --cache-size", () => {
  assert.equal(SNAPSHOT_MAX_HOSTS, MAX_MX_HOSTS);
  assert.equal(snapshotByteLimit(100_000), 51_200_000);
  assert.equal(snapshotByteLimit(10), 16 * 1024 * 1024);
});

Deno.test("snapshot: decoding any damage to a valid file never throws", () => {
  const text = encode();
  fc.assert(
    fc.property(
      fc.nat(text.length),
      fc.nat(text.length),
      fc.string({ maxLength: 8 }),
      (at, length, insert) => {
        const damaged = text.slice(0, at) + insert + text.slice(at + length);
        const decoded = decode(damaged);
        if (decoded.ok) assert.equal(decoded.value.length <= ENTRIES.length, true);
      },
    ),
    { numRuns: 2000 },
  );
});

Deno.test("snapshot: a domain is accepted exactly when domainFromKey keeps it as it is", () => {
  const keptAsIs = (name: string) => {
    const parsed = domainFromKey(name);
    return parsed.ok && parsed.value === name;
  };
  const samples = [
    "example.com",
    "a",
    "localdomain",
    "xn--mller-kva.example",
    "_dmarc.example",
    "a-b.c_d.example",
    `${"a".repeat(63)}.example`,
    `${"a".repeat(64)}.example`,
    Array(127).fill("a").join("."),
    Array(128).fill("a").join("."),
    "example.123",
    "123",
    "123.example",
    "Example.com",
    "example.com.",
    ".example.com",
    "a..b",
    "-a.example",
    "a-.example",
    "*",
    "[192.0.2.1]",
    "u@example.com",
    "müller.example",
    "",
  ];
  for (const name of samples) assert.equal(isCachedDomain(name), keptAsIs(name), name);
  const label = fc.stringMatching(/^[a-zA-Z0-9_.@*\[\]-]{0,8}$/);
  fc.assert(
    fc.property(fc.array(label, { minLength: 1, maxLength: 5 }), (labels) => {
      const name = labels.join(".");
      assert.equal(isCachedDomain(name), keptAsIs(name), name);
    }),
    { numRuns: 5000 },
  );
});
