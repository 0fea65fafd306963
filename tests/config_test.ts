import assert from "node:assert/strict";
import { formatConfigError, parseConfig } from "../lib/config.ts";

Deno.test("the original format parses: comments, blank lines, results with spaces", () => {
  const text = "# comment\n\n  outlook.com   relay:[o365.example]:587\n" +
    "Google.COM\tsmtp:[a.example]:25, [b.example]:25  \n   # indented comment\n";
  const parsed = parseConfig(text, "/etc/r.conf");
  assert.ok(parsed.ok);
  const rules = parsed.ruleSet.rules;
  assert.equal(rules.length, 2);
  assert.deepEqual(
    rules.map((r) => [r.line, r.kind, r.value, r.result]),
    [
      [3, "substring", "outlook.com", "relay:[o365.example]:587"],
      [4, "substring", "google.com", "smtp:[a.example]:25, [b.example]:25"],
    ],
  );
  assert.equal(parsed.ruleSet.file, "/etc/r.conf");
});

Deno.test("pattern kinds: suffix:, exact:, /regex/, case-insensitive, CRLF tolerated", () => {
  const text = "SUFFIX:Outlook.COM. a\r\nexact:MX.Example.com b\r\n/^mx[0-9]+\\./ c\r\n";
  const parsed = parseConfig(text, "r.conf");
  assert.ok(parsed.ok);
  const [suffix, exact, regex] = parsed.ruleSet.rules;
  assert.deepEqual([suffix.kind, suffix.value, suffix.result], ["suffix", "outlook.com", "a"]);
  assert.deepEqual([exact.kind, exact.value], ["exact", "mx.example.com"]);
  assert.deepEqual([regex.kind, regex.value, regex.result], ["regex", "^mx[0-9]+\\.", "c"]);
  assert.equal(regex.test("MX12.example"), true);
});

Deno.test("errors name the file, the line and the fix; all errors are reported", () => {
  const text = "ok.example relay:[a]:25\nmissing-result\n/[unclosed/ relay:x\nfoo:bar relay:y\n";
  const parsed = parseConfig(text, "/etc/r.conf");
  assert.equal(parsed.ok, false);
  if (parsed.ok) return;
  const messages = parsed.errors.map(formatConfigError);
  assert.equal(messages.length, 3);
  assert.match(
    messages[0],
    /^\/etc\/r\.conf, line 2: missing result after pattern "missing-result"/,
  );
  assert.match(messages[1], /^\/etc\/r\.conf, line 3: bad regular expression \/\[unclosed\//);
  assert.match(messages[2], /^\/etc\/r\.conf, line 4: unknown pattern kind "foo:"/);
});

Deno.test("a file without rules is an error", () => {
  for (const text of ["", "# only comments\n\n"]) {
    const parsed = parseConfig(text, "/etc/r.conf");
    assert.equal(parsed.ok, false);
    if (!parsed.ok) assert.match(formatConfigError(parsed.errors[0]), /^\/etc\/r\.conf: no rules/);
  }
});

Deno.test("empty suffix and unterminated regex are errors", () => {
  const parsed = parseConfig("suffix: relay:a\n/abc relay:b\n", "r.conf");
  assert.equal(parsed.ok, false);
  if (!parsed.ok) {
    assert.deepEqual(parsed.errors.map((e) => e.line), [1, 2]);
  }
});

Deno.test("a result too long for a tcp_table reply is refused, never cut short", () => {
  const relays = Array.from({ length: 160 }, (_, i) => `[relay${i}.example.com]:25`).join(", ");
  const parsed = parseConfig(`outlook.com smtp:${relays}\n`, "r.conf");
  assert.equal(parsed.ok, false);
  if (!parsed.ok) {
    assert.match(
      formatConfigError(parsed.errors[0]),
      /^r\.conf, line 1: result is \d+ bytes once encoded; a tcp_table reply holds at most 4091$/,
    );
  }
  const fits = parseConfig(`outlook.com smtp:${relays.slice(0, 3000)}\n`, "r.conf");
  assert.equal(fits.ok, true);
});
