/**
 * Property tests (fast-check): codecs round-trip, and every parser of untrusted input returns a
 * value (an error value when the input is bad) and never throws.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { FRAME_BAD, FRAME_NEED_MORE, FRAME_REQUEST, newFrame } from "../lib/server/codec.ts";
import { parseConfig } from "../lib/routing/rules_file.ts";
import dnsPacket from "dns-packet";
import { Buffer } from "node:buffer";
import { interpretReply } from "../lib/dns/answer.ts";
import { checkReply, encodeMxQuery, toQueryName } from "../lib/dns/wire.ts";
import { domainFromKey } from "../lib/routing/keys.ts";
import { compileRegex } from "../lib/routing/regex.ts";
import { EDNS_OPT } from "./support/fake_dns.ts";
import { encodeNetstring, scanNetstring, socketmapCodec } from "../lib/server/socketmap.ts";
import {
  decodeTcpTable,
  encodeTcpTable,
  parseTcpTableRequest,
  tcpTableCodec,
} from "../lib/server/tcp_table.ts";

const RUNS = { numRuns: 2000 };

Deno.test("tcp_table: decode(encode(x)) = x for any text", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary" }), (text) => {
      const encoded = encodeTcpTable(text);
      // Outside its escapes, the encoded form is printable ASCII without space or %.
      assert.match(encoded.replace(/%[0-9A-F]{2}/g, ""), /^[\x21-\x24\x26-\x7e]*$/);
      // Lone surrogates cannot survive UTF-8; everything else must round-trip exactly.
      if (text.isWellFormed()) assert.equal(decodeTcpTable(encoded), text);
    }),
    RUNS,
  );
});

Deno.test("netstring: scan(encode(x)) = x for any text", () => {
  fc.assert(
    fc.property(fc.string({ unit: "grapheme", maxLength: 300 }), (text) => {
      const bytes = encodeNetstring(text);
      const scan = scanNetstring(bytes, 0, bytes.length);
      assert.equal(scan.kind, "ok");
      if (scan.kind === "ok") {
        assert.equal(new TextDecoder().decode(scan.data), text);
        assert.equal(scan.next, bytes.length);
      }
    }),
    RUNS,
  );
});

Deno.test("request parsers never throw, whatever the bytes", () => {
  const frame = newFrame();
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 6000 }), (bytes) => {
      for (const codec of [tcpTableCodec, socketmapCodec]) {
        let start = 0;
        for (let guard = 0; guard < 10_000; guard++) {
          const status = codec.frame(bytes, start, bytes.length, frame);
          if (status === FRAME_NEED_MORE) break;
          assert.ok(status === FRAME_REQUEST || status === FRAME_BAD);
          assert.ok(frame.next > start && frame.next <= bytes.length, "always progresses");
          if (status === FRAME_BAD && frame.close) break;
          start = frame.next;
        }
      }
      const text = new TextDecoder().decode(bytes);
      const request = parseTcpTableRequest(text);
      assert.ok(request.kind === "get" || request.kind === "bad");
      if (request.kind === "get") domainFromKey(request.key);
    }),
    RUNS,
  );
});

Deno.test("the DNS answer parser never throws on any packet", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), (body) => {
      // Make most packets pass the ID/QR checks so the decoder itself is exercised.
      const bytes = new Uint8Array(Math.max(12, body.length));
      bytes.set(body);
      bytes[0] = 0x12;
      bytes[1] = 0x34;
      bytes[2] |= 0x80;
      bytes[2] &= ~0x78;
      const check = checkReply(bytes, { id: 0x1234, name: "example.com" });
      assert.ok(["ignore", "malformed", "reply"].includes(check.kind));
      if (check.kind === "reply") {
        const outcome = interpretReply(check.reply, { name: "example.com", from: "test" });
        assert.ok(["mx", "nullmx", "nodata", "nxdomain", "tempfail"].includes(outcome.kind));
      }
    }),
    RUNS,
  );
});

Deno.test("the config parser and the regex check never throw on any text", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 400 }), (text) => {
      const parsed = parseConfig(text, "fuzz.conf");
      if (!parsed.ok) assert.ok(parsed.error.length > 0);
      compileRegex(text);
    }),
    RUNS,
  );
  fc.assert(
    fc.property(
      fc.array(
        fc.constantFrom("suffix:", "exact:", "/", "pool:", "(", "+", "|", " ", "\n", "a", "1", "#"),
      ),
      (parts) => {
        const parsed = parseConfig(parts.join(""), "fuzz.conf");
        assert.ok(parsed.ok || parsed.error.length > 0);
      },
    ),
    RUNS,
  );
});

Deno.test("property: our MX query bytes are dns-packet's, for every name we would ask", () => {
  const label = fc.string({
    unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
    minLength: 1,
    maxLength: 63,
  })
    .filter((text) => !text.includes("."));
  fc.assert(
    fc.property(
      fc.array(label, { minLength: 1, maxLength: 6 }),
      fc.integer({ min: 0, max: 0xffff }),
      (labels, id) => {
        const name = toQueryName(labels.join("."));
        fc.pre(name !== null);
        const expected = dnsPacket.encode({
          type: "query",
          id,
          flags: dnsPacket.RECURSION_DESIRED,
          questions: [{ type: "MX", class: "IN", name: name! }],
          additionals: [EDNS_OPT],
        });
        assert.deepEqual(encodeMxQuery({ id, name: name! }), new Uint8Array(Buffer.from(expected)));
      },
    ),
    RUNS,
  );
});
