import assert from "node:assert/strict";
import { encodedResultLength, MAX_RESULT_BYTES } from "../../lib/routing/rules_file.ts";
import { FRAME_BAD, FRAME_NEED_MORE, FRAME_REQUEST, newFrame } from "../../lib/server/codec.ts";
import {
  decodeTcpTable,
  encodeTcpTable,
  MAX_TCP_TABLE_LINE,
  MAX_TCP_TABLE_TEXT,
  parseTcpTableRequest,
  tcpTableCodec,
  tcpTableReply,
} from "../../lib/server/tcp_table.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array) => new TextDecoder().decode(data);

Deno.test("encodeTcpTable escapes %, whitespace, controls and non-ASCII bytes", () => {
  assert.equal(encodeTcpTable("relay:[a.example]:587"), "relay:[a.example]:587");
  assert.equal(encodeTcpTable("smtp:[a]:25, [b]:25"), "smtp:[a]:25,%20[b]:25");
  assert.equal(encodeTcpTable("50%\t\n\x7f"), "50%25%09%0A%7F");
  assert.equal(encodeTcpTable("müller"), "m%C3%BCller");
});

Deno.test("decodeTcpTable accepts hex in any case and UTF-8 escapes", () => {
  assert.equal(decodeTcpTable("NO%20RESULT"), "NO RESULT");
  assert.equal(decodeTcpTable("a%2fb%2Fc"), "a/b/c");
  assert.equal(decodeTcpTable("user@m%C3%BCller.example"), "user@müller.example");
  assert.equal(decodeTcpTable("%22a%20b%22@example.com"), '"a b"@example.com');
});

Deno.test("decodeTcpTable refuses bad escapes and non-UTF-8 bytes", () => {
  assert.equal(decodeTcpTable("%ZZ"), null);
  assert.equal(decodeTcpTable("abc%"), null);
  assert.equal(decodeTcpTable("abc%4"), null);
  assert.equal(decodeTcpTable("%FF%FE"), null);
  assert.equal(decodeTcpTable("%C3"), null);
});

Deno.test("decode(encode(x)) is x for awkward text", () => {
  for (const sample of ["", "a b", "%%%", "tab\there", "ünïcödé 日本", "x\r\ny", "100% sure"]) {
    assert.equal(decodeTcpTable(encodeTcpTable(sample)), sample);
  }
});

Deno.test("parseTcpTableRequest reads get requests and refuses the rest", () => {
  assert.deepEqual(parseTcpTableRequest("get user@example.com"), {
    kind: "get",
    key: "user@example.com",
  });
  assert.deepEqual(parseTcpTableRequest("get user@example.com\r"), {
    kind: "get",
    key: "user@example.com",
  });
  assert.deepEqual(parseTcpTableRequest("GET a%40b.example"), { kind: "get", key: "a@b.example" });
  assert.equal(parseTcpTableRequest("put a b").kind, "bad");
  assert.match(JSON.stringify(parseTcpTableRequest("put a b")), /unknown command \\"put\\"/);
  assert.equal(parseTcpTableRequest("get").kind, "bad");
  assert.equal(parseTcpTableRequest("get %ZZ").kind, "bad");
});

Deno.test("tcpTableReply encodes and stays within 4096 bytes", () => {
  assert.equal(tcpTableReply(500, "NO RESULT"), "500 NO%20RESULT\n");
  assert.equal(tcpTableReply(200, "smtp:[a]:25, [b]:25"), "200 smtp:[a]:25,%20[b]:25\n");
  const long = tcpTableReply(400, " ".repeat(5000));
  assert.ok(long.length <= MAX_TCP_TABLE_LINE);
  assert.match(long, /^400 (%20)+\n$/);
});

Deno.test("tcpTableCodec frames pipelined and split requests", () => {
  const frame = newFrame();
  const buffer = bytes("get a.example\nget b.example\nget c.ex");
  assert.equal(tcpTableCodec.frame(buffer, 0, buffer.length, frame), FRAME_REQUEST);
  assert.equal(frame.key, "a.example");
  assert.equal(tcpTableCodec.frame(buffer, frame.next, buffer.length, frame), FRAME_REQUEST);
  assert.equal(frame.key, "b.example");
  assert.equal(tcpTableCodec.frame(buffer, frame.next, buffer.length, frame), FRAME_NEED_MORE);
});

Deno.test("tcpTableCodec answers 400 and closes on a line over 4096 bytes", () => {
  const frame = newFrame();
  const buffer = bytes("get " + "a".repeat(5000));
  assert.equal(tcpTableCodec.frame(buffer, 0, buffer.length, frame), FRAME_BAD);
  assert.equal(frame.close, true);
  assert.match(text(frame.reply), /^400 request%20longer%20than%204096%20bytes\n$/);
  const withNewline = bytes("get " + "a".repeat(4092) + "\n");
  assert.equal(tcpTableCodec.frame(withNewline, 0, withNewline.length, frame), FRAME_BAD);
  const fits = bytes("get " + "a".repeat(4091) + "\n");
  assert.equal(tcpTableCodec.frame(fits, 0, fits.length, frame), FRAME_REQUEST);
});

Deno.test("tcpTableCodec answers 400 and keeps the connection on unknown commands", () => {
  const frame = newFrame();
  const buffer = bytes("hello\n");
  assert.equal(tcpTableCodec.frame(buffer, 0, buffer.length, frame), FRAME_BAD);
  assert.equal(frame.close, false);
  assert.equal(frame.next, 6);
  assert.match(text(frame.reply), /^400 unknown%20command/);
  const binary = new Uint8Array([0xff, 0xfe, 10]);
  assert.equal(tcpTableCodec.frame(binary, 0, 3, frame), FRAME_BAD);
  assert.equal(frame.close, false);
});

Deno.test("the rules file bounds results by what a tcp_table reply carries, encoded the same", () => {
  assert.equal(MAX_RESULT_BYTES, MAX_TCP_TABLE_TEXT);
  for (
    const result of ["relay:[a]:587", "smtp:[a]:25, [b]:25", "x%y\tz", "relay:[bücher.example]"]
  ) {
    assert.equal(encodedResultLength(result), encodeTcpTable(result).length, result);
  }
});
