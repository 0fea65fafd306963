import assert from "node:assert/strict";
import { FRAME_BAD, FRAME_NEED_MORE, FRAME_REQUEST, newFrame } from "../../lib/server/codec.ts";
import type { Decision } from "../../lib/routing/router.ts";
import {
  encodeNetstring,
  MAX_NETSTRING,
  MAX_SOCKETMAP_REQUEST,
  scanNetstring,
  socketmapCodec,
} from "../../lib/server/socketmap.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array) => new TextDecoder().decode(data);

Deno.test("encodeNetstring counts UTF-8 bytes", () => {
  assert.equal(text(encodeNetstring("NOTFOUND ")), "9:NOTFOUND ,");
  assert.equal(text(encodeNetstring("")), "0:,");
  assert.equal(text(encodeNetstring("ü")), "2:ü,");
  assert.equal(encodeNetstring("x".repeat(MAX_NETSTRING + 10)).length, MAX_NETSTRING + 8);
});

Deno.test("scanNetstring finds one netstring, or asks for more", () => {
  const buffer = bytes("3:abc,5:hello,2:x");
  const first = scanNetstring(buffer, 0, buffer.length);
  assert.equal(first.kind, "ok");
  if (first.kind !== "ok") return;
  assert.equal(text(first.data), "abc");
  const second = scanNetstring(buffer, first.next, buffer.length);
  assert.ok(second.kind === "ok" && text(second.data) === "hello");
  if (second.kind !== "ok") return;
  assert.deepEqual(scanNetstring(buffer, second.next, buffer.length), { kind: "need-more" });
  assert.deepEqual(scanNetstring(bytes("12"), 0, 2), { kind: "need-more" });
  assert.deepEqual(scanNetstring(bytes("3:abc"), 0, 5), { kind: "need-more" });
});

Deno.test("scanNetstring refuses bad lengths, oversize and a missing comma", () => {
  assert.equal(scanNetstring(bytes("x:abc,"), 0, 6).kind, "bad");
  assert.equal(scanNetstring(bytes(":abc,"), 0, 5).kind, "bad");
  assert.equal(scanNetstring(bytes("3:abcd"), 0, 6).kind, "bad");
  assert.equal(scanNetstring(bytes("100001:"), 0, 7).kind, "bad");
  assert.equal(scanNetstring(bytes("99999999999999999999:"), 0, 21).kind, "bad");
  assert.equal(scanNetstring(bytes("100000:"), 0, 7).kind, "need-more");
});

Deno.test("socketmapCodec reads NAME KEY requests", () => {
  const frame = newFrame();
  const buffer = bytes("24:mxroute user@example.com,");
  assert.equal(socketmapCodec.frame(buffer, 0, buffer.length, frame), FRAME_REQUEST);
  assert.equal(frame.key, "user@example.com");
  assert.equal(frame.next, buffer.length);
  const partial = bytes("24:mxroute user@");
  assert.equal(socketmapCodec.frame(partial, 0, partial.length, frame), FRAME_NEED_MORE);
});

Deno.test("socketmapCodec answers PERM: malformed framing closes, bad content does not", () => {
  const frame = newFrame();
  const broken = bytes("abc:mxroute x,");
  assert.equal(socketmapCodec.frame(broken, 0, broken.length, frame), FRAME_BAD);
  assert.equal(frame.close, true);
  assert.match(text(frame.reply), /^\d+:PERM malformed netstring length,$/);
  const oversize = bytes("200000:");
  assert.equal(socketmapCodec.frame(oversize, 0, oversize.length, frame), FRAME_BAD);
  assert.equal(frame.close, true);
  // Requests are bounded like a tcp_table line: refused from the length, before any data.
  const long = bytes(`${MAX_SOCKETMAP_REQUEST + 1}:`);
  assert.equal(socketmapCodec.frame(long, 0, long.length, frame), FRAME_BAD);
  assert.equal(frame.close, true);
  assert.match(text(frame.reply), /^\d+:PERM netstring longer than 4096 bytes,$/);
  const key = "u@example.com".padStart(MAX_SOCKETMAP_REQUEST - "mxroute ".length, "x");
  const longest = bytes(`${MAX_SOCKETMAP_REQUEST}:mxroute ${key},`);
  assert.equal(longest.length, socketmapCodec.maxFrame);
  assert.equal(socketmapCodec.frame(longest, 0, longest.length, frame), FRAME_REQUEST);
  assert.equal(frame.key, key);
  const noKey = bytes("7:mxroute,");
  assert.equal(socketmapCodec.frame(noKey, 0, noKey.length, frame), FRAME_BAD);
  assert.equal(frame.close, false);
  assert.equal(frame.next, noKey.length);
});

Deno.test("socketmapCodec encodes decisions as OK, NOTFOUND and TEMP", () => {
  const base = {
    reason: "",
    rule: null,
    matchedHost: null,
    hosts: [],
    provider: null,
    replies: [],
    ruleSet: null,
    hostsText: undefined,
  };
  const match: Decision = { ...base, label: "match", result: "relay:[a]:587" };
  const nomatch: Decision = { ...base, label: "nomatch", result: null };
  const tempfail: Decision = { ...base, label: "tempfail", result: null, reason: "SERVFAIL" };
  assert.equal(text(socketmapCodec.encode(match)), "16:OK relay:[a]:587,");
  assert.equal(text(socketmapCodec.encode(nomatch)), "9:NOTFOUND ,");
  assert.equal(text(socketmapCodec.encode(tempfail)), "13:TEMP SERVFAIL,");
});

Deno.test("netstring lengths with leading zeros are refused (they could grow forever)", () => {
  assert.equal(scanNetstring(bytes("03:abc,"), 0, 7).kind, "bad");
  assert.equal(scanNetstring(bytes("0000000000"), 0, 10).kind, "bad");
  assert.equal(scanNetstring(bytes("0:,"), 0, 3).kind, "ok");
});
