import assert from "node:assert/strict";
import { formatConfigError, parseConfig } from "../../lib/routing/rules_file.ts";

Deno.test("the original format parses: comments, blank lines, results with spaces", () => {
  const text = "# comment\n\n  outlook.com   relay:[o365.example]:587\n" +
    "Google.COM\tsmtp:[a.example]:25, [b.example]:25  \n   # indented comment\n";
  const parsed = parseConfig(text, "/etc/r.conf");
  assert.ok(parsed.ok);
  const rules = parsed.value.ruleSet.rules;
  assert.equal(rules.length, 2);
  assert.deepEqual(
    rules.map((r) => [r.line, r.kind, r.value, r.result]),
    [
      [3, "substring", "outlook.com", "relay:[o365.example]:587"],
      [4, "substring", "google.com", "smtp:[a.example]:25, [b.example]:25"],
    ],
  );
  assert.equal(parsed.value.ruleSet.file, "/etc/r.conf");
});

Deno.test("pattern kinds: suffix:, exact:, /regex/, case-insensitive, CRLF tolerated", () => {
  const text = "SUFFIX:Outlook.COM. a\r\nexact:MX.Example.com b\r\n/^mx[0-9]+\\./ c\r\n";
  const parsed = parseConfig(text, "r.conf");
  assert.ok(parsed.ok);
  const [suffix, exact, regex] = parsed.value.ruleSet.rules;
  assert.deepEqual([suffix.kind, suffix.value, suffix.result], ["suffix", "outlook.com", "a"]);
  assert.deepEqual([exact.kind, exact.value], ["exact", "mx.example.com"]);
  assert.deepEqual([regex.kind, regex.value, regex.result], ["regex", "^mx[0-9]+\\.", "c"]);
  assert.equal(regex.test("MX12.example"), true);
});

Deno.test("errors name the file, the line and the fix; all errors are reported", () => {
  const text = "ok.example relay:[a]:25\n/[unclosed/ relay:x\n/(?=a)b/ relay:y\n" +
    "pool:p 1 relay:x\npool:p 2 relay:y\n";
  const parsed = parseConfig(text, "/etc/r.conf");
  assert.equal(parsed.ok, false);
  if (parsed.ok) return;
  const messages = parsed.error.map(formatConfigError);
  assert.equal(messages.length, 3);
  assert.match(messages[0], /^\/etc\/r\.conf, line 2: bad regular expression \/\[unclosed\//);
  assert.match(messages[1], /^\/etc\/r\.conf, line 3: bad regular expression .*lookahead/);
  assert.match(messages[2], /^\/etc\/r\.conf, line 5: pool "p" defined twice \(first on line 4\)/);
});

Deno.test("a file without rules is an error", () => {
  for (const text of ["", "# only comments\n\n"]) {
    const parsed = parseConfig(text, "/etc/r.conf");
    assert.equal(parsed.ok, false);
    if (!parsed.ok) assert.match(formatConfigError(parsed.error[0]), /^\/etc\/r\.conf: no rules/);
  }
});

Deno.test("lines the original read as substrings that never match load, skipped with a warning", () => {
  // Each is a plain substring to the original (a host name has no ":" and no "/"), so it
  // never matched: skipping it routes the same, and the router still starts.
  const relays = Array.from({ length: 160 }, (_, i) => `[relay${i}.example.com]:25`).join(", ");
  const text = "suffix: relay:a\n/abc relay:b\ndomain:a..b z\nexact: relay:c\n" +
    `outlook.com smtp:${relays}\npool:p\npool:q 0 relay:x\nok.example relay:[d]:25\n`;
  const parsed = parseConfig(text, "r.conf");
  assert.ok(parsed.ok, JSON.stringify(parsed));
  assert.deepEqual(parsed.value.ruleSet.rules.map((rule) => rule.line), [8]);
  const warnings = parsed.value.warnings.map(formatConfigError);
  assert.equal(warnings.length, 7, warnings.join("\n"));
  assert.match(
    warnings[0],
    /^r\.conf, line 1: warning: empty suffix: pattern.*; the line is skipped, as the original never matched it$/,
  );
  assert.match(
    warnings[1],
    /^r\.conf, line 2: warning: bad regular expression \/abc: write it as \/REGEX\//,
  );
  assert.match(warnings[2], /^r\.conf, line 3: warning: bad domain pattern "domain:a\.\.b"/);
  assert.match(warnings[3], /^r\.conf, line 4: warning: empty exact: pattern/);
  assert.match(
    warnings[4],
    /^r\.conf, line 5: warning: result is \d+ bytes once encoded; a tcp_table reply holds at most 4091; the line is skipped/,
  );
  assert.match(
    warnings[5],
    /^r\.conf, line 6: warning: pattern "pool:p" has no result, so the line is skipped/,
  );
  assert.match(
    warnings[6],
    /^r\.conf, line 7: warning: pool "q": weight "0" is not a positive whole number.*the line is skipped/,
  );
  const fits = parseConfig(`outlook.com smtp:${relays.slice(0, 3000)}\n`, "r.conf");
  assert.ok(fits.ok);
  assert.deepEqual(fits.value.warnings, []);
});

/** The warnings of a file that loads, formatted as the log and `check` print them. */
function warningsOf(text: string): string[] {
  const parsed = parseConfig(text, "/etc/r.conf");
  if (!parsed.ok) throw new Error(parsed.error.map(formatConfigError).join("\n"));
  return parsed.value.warnings.map(formatConfigError);
}

Deno.test("what the original accepted loads, with one warning per line naming the fix", () => {
  const text = "ok.example relay:[a]:25\n" +
    "missing-result\n" +
    "mx:microsoft relay:[b]:25\n" +
    "ok2.example pool:relays\n" +
    "ok3.example relay:[c]:25 # the C relay\n";
  const parsed = parseConfig(text, "/etc/r.conf");
  assert.ok(parsed.ok);
  const rules = parsed.value.ruleSet.rules;
  assert.deepEqual(rules.map((r) => [r.line, r.kind, r.value, r.result]), [
    [1, "substring", "ok.example", "relay:[a]:25"],
    [3, "substring", "mx:microsoft", "relay:[b]:25"],
    [4, "substring", "ok2.example", "pool:relays"],
    [5, "substring", "ok3.example", "relay:[c]:25 # the C relay"],
  ]);
  assert.equal(rules[2].pool, null, "pool:relays without a pool goes to Postfix as written");
  const warnings = parsed.value.warnings.map(formatConfigError);
  assert.equal(warnings.length, 4);
  assert.match(
    warnings[0],
    /^\/etc\/r\.conf, line 2: warning: pattern "missing-result" has no result, so the line is skipped, as the original did/,
  );
  assert.match(
    warnings[1],
    /^\/etc\/r\.conf, line 3: warning: unknown pattern kind "mx:" .*read as a plain substring, as the original did/,
  );
  assert.match(
    warnings[2],
    /^\/etc\/r\.conf, line 4: warning: no pool "relays" is defined, .*as the original did; define the pool/,
  );
  assert.match(
    warnings[3],
    /^\/etc\/r\.conf, line 5: warning: result .* holds " #": Postfix has no comments/,
  );
});

Deno.test("duplicate patterns: the last line's result at the first line's place, as the original", () => {
  const parsed = parseConfig(
    "outlook.com relay:[first]:25\nsuffix:google.com smtp:[g]:25\noutlook.com relay:[last]:25\n",
    "/etc/r.conf",
  );
  assert.ok(parsed.ok);
  assert.deepEqual(parsed.value.ruleSet.rules.map((r) => [r.line, r.result]), [
    [1, "relay:[last]:25"],
    [2, "smtp:[g]:25"],
  ]);
  assert.match(
    formatConfigError(parsed.value.warnings[0]),
    /^\/etc\/r\.conf, line 3: warning: pattern "outlook\.com" is also on line 1; .*"relay:\[last\]:25" is used at line 1's place/,
  );
});

Deno.test("rules that can never match are warned about; the leading-dot forms are normalised", () => {
  const parsed = parseConfig(
    "suffix:.icloud.com a\nsuffix:*.outlook.com b\nexact:mx_1.example c\nmx!.example d\n" +
      "suffix:mx@x.example e\n",
    "/etc/r.conf",
  );
  assert.ok(parsed.ok);
  assert.deepEqual(parsed.value.ruleSet.rules.map((r) => r.value), [
    "icloud.com",
    "outlook.com",
    "mx_1.example",
    "mx!.example",
    "mx@x.example",
  ]);
  assert.equal(parsed.value.ruleSet.rules[0].test("mx.icloud.com"), true);
  const warnings = parsed.value.warnings.map(formatConfigError);
  assert.equal(warnings.length, 4);
  assert.match(
    warnings[0],
    /line 1: warning: "suffix:\.icloud\.com" is read as "suffix:icloud\.com"/,
  );
  assert.match(
    warnings[1],
    /line 2: warning: "suffix:\*\.outlook\.com" is read as "suffix:outlook\.com"/,
  );
  assert.match(
    warnings[2],
    /line 4: warning: pattern "mx!\.example" has characters no host name has/,
  );
  assert.match(warnings[3], /line 5: warning: pattern "suffix:mx@x\.example" has characters/);
});

Deno.test("a UTF-8 byte order mark is stripped, so the first rule matches", () => {
  const parsed = parseConfig("\uFEFFoutlook.com relay:[a]:25\n", "/etc/r.conf");
  assert.ok(parsed.ok);
  assert.equal(parsed.value.ruleSet.rules[0].value, "outlook.com");
  assert.equal(parsed.value.ruleSet.rules[0].test("x.protection.outlook.com"), true);
  assert.match(
    formatConfigError(parsed.value.warnings[0]),
    /line 1: warning: a UTF-8 byte order mark/,
  );
});

Deno.test("domain rules: exact and subdomain forms, IDN, DUNNO; kept apart from MX rules", () => {
  const parsed = parseConfig(
    "domain:Contoso.COM. smtp:[c]:25\ndomain:.contoso.com smtp:[s]:25\ndomain:*.fabrikam.com x\n" +
      "domain:bücher.example DUNNO\nsuffix:outlook.com relay:[o]:587\n",
    "/etc/r.conf",
  );
  assert.ok(parsed.ok);
  const { rules, mxRules, domainRules } = parsed.value.ruleSet;
  assert.equal(rules.length, 5);
  assert.deepEqual(mxRules.map((r) => r.line), [5]);
  assert.deepEqual([...domainRules.keys()], [
    "contoso.com",
    ".contoso.com",
    ".fabrikam.com",
    "xn--bcher-kva.example",
  ]);
  assert.equal(domainRules.get("xn--bcher-kva.example")?.answersNotFound, true);
  assert.equal(domainRules.get("contoso.com")?.answersNotFound, false);
  assert.deepEqual(warningsOf("domain:*.fabrikam.com x\n").length, 1);
});

Deno.test("real errors still refuse to start", () => {
  for (
    const text of [
      "/(?<=a)b/ relay:x\n/[unclosed/ relay:x\n",
      "pool:p 1 relay:x\npool:p 1 relay:y\na pool:p\n",
      "# no rules\n",
    ]
  ) {
    assert.equal(parseConfig(text, "/etc/r.conf").ok, false, text);
  }
});
