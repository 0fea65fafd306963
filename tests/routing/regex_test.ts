import assert from "node:assert/strict";
import { describeRegexes } from "../../lib/app/check.ts";
import { formatConfigError, parseConfig } from "../../lib/routing/rules_file.ts";
import { compileRegex, WORST_LOOKUP_MS } from "../../lib/routing/regex.ts";
import { matchRules } from "../../lib/routing/rules.ts";

/** The matcher of a source the per-rule limit accepts; fails the test with the reason otherwise. */
function matcher(source: string): (host: string) => boolean {
  const compiled = compileRegex(source);
  assert.ok(compiled.ok, `${source}: ${compiled.ok ? "" : compiled.error}`);
  return compiled.value.test;
}

function refusal(source: string): string {
  const compiled = compileRegex(source);
  assert.ok(!compiled.ok, `${source} is accepted`);
  return compiled.error;
}

/** The first error of a config file, formatted as start-up and `check` print it. */
function firstError(text: string): string {
  const parsed = parseConfig(text, "/etc/r.conf");
  assert.equal(parsed.ok, false, "the file is accepted");
  return parsed.ok ? "" : formatConfigError(parsed.error[0]);
}

const DIGITS_44 = "1".repeat(44);

Deno.test("hostile rules are refused as too large, or matched as JavaScript matches them", () => {
  const refused: [string, number][] = [
    ["((a|aa)){0,250}", 2252],
    ["[a-z.-]{0,253}[a-z.-]{0,253}[a-z.-]{0,253}\\.example\\.com$", 1533],
    ["[a-z.-]{0,253}[a-z.-]{0,253}[a-z.-]{0,253}[a-z.-]{0,253}\\.example\\.com$", 2039],
  ];
  for (const [source, instructions] of refused) {
    assert.equal(
      refusal(source),
      `too large: it compiles to ${instructions} RE2 instructions, over the limit of 256 per ` +
        "rule, which bounds the time of a lookup; a bounded repeat such as {0,253} costs one " +
        "copy of what it repeats per count: use + or * instead, or a suffix: or exact: rule",
      source,
    );
  }
  // Short names, on which JavaScript's backtracking is quick, to compare the answers.
  const names = ["a", "aa", "mx1.mail.example.com", "mx12345.mail.example.com", "x.example.com"];
  for (const source of ["((\\d|\\d\\d))*", "(?:(a|aa))*", "((?<x>a|aa))*"]) {
    const test = matcher(source);
    const js = new RegExp(source, "i");
    for (const name of names) assert.equal(test(name), js.test(name), `${source} on ${name}`);
  }
  const anchored = matcher("^mx((\\d|\\d\\d))*\\.mail\\.example\\.com$");
  assert.equal(anchored(`mx${DIGITS_44}x.mail.example.com`), false, "the issue's hostile MX");
  assert.equal(anchored(`mx${DIGITS_44}.mail.example.com`), true);
  assert.equal(anchored("mx.mail.example.com"), true);
});

Deno.test("named groups are accepted in both spellings, (?<x>...) and (?P<x>...)", () => {
  for (
    const source of ["^(?<x>mx|mail)\\d+\\.example\\.com$", "^(?P<x>mx|mail)\\d+\\.example\\.com$"]
  ) {
    const test = matcher(source);
    assert.equal(test("mail7.example.com"), true, source);
    assert.equal(test("smtp7.example.com"), false, source);
  }
});

Deno.test("backreferences, lookaround, atomic groups and possessive repeats are refused", () => {
  const refused: [string, string][] = [
    ["(mx)\\d\\1", "backreference \\1"],
    ["(?<n>mx)\\k<n>", "backreference \\k"],
    ["mx(?=\\d)", "lookahead (?="],
    ["mx(?!\\d)", "lookahead (?!"],
    ["(?<=mx)\\d", "lookbehind (?<="],
    ["(?<!mx)\\d", "lookbehind (?<!"],
    ["(?>mx|m)x", "atomic group (?>"],
    ["mx\\d++", "possessive repeat ++"],
    ["mx\\d*+", "possessive repeat *+"],
  ];
  for (const [source, feature] of refused) {
    assert.equal(
      refusal(source),
      `${feature} is not supported: rules are matched by RE2, which runs in time linear in ` +
        "the name and so has no backtracking features; rewrite the pattern without it",
      source,
    );
  }
});

Deno.test("other syntax errors keep RE2's reason, without the case-insensitive prefix", () => {
  assert.equal(refusal("mx[0-9"), "missing closing ]: [0-9");
  assert.equal(refusal("(mx"), "missing closing ): (mx");
  assert.equal(refusal("mx\\"), "trailing backslash at end of expression");
});

Deno.test("matching is case-insensitive, in rules the backtracking check refused too", () => {
  // A repeated group holding a repeat: refused before, for the backtracking it could cause.
  const test = matcher("^(?:MX\\d+\\.)+Mail\\.ICLOUD\\.com$");
  assert.equal(test("mx01.mail.icloud.com"), true);
  assert.equal(test("mx1.mx2.mail.icloud.com"), true);
  assert.equal(test("MX01.MAIL.ICLOUD.COM"), true);
  assert.equal(test("mx.mail.icloud.com"), false);
  assert.equal(matcher("^[A-Z]+(?:\\.[A-Z]+)*\\.example$")("mail.eu.example"), true);
});

Deno.test("a rule matches anywhere in the name unless it anchors with ^ $ or RE2's \\A \\z", () => {
  assert.equal(matcher("mail\\.example")("mx.mail.example.com"), true);
  assert.equal(matcher("\\Amx\\.")("mx.mail.example.com"), true);
  assert.equal(matcher("\\.com\\z")("mx.mail.example.com"), true);
  assert.equal(matcher("\\Amail\\.example")("mx.mail.example.com"), false);
  assert.equal(matcher("^mail\\.example")("mx.mail.example.com"), false);
  assert.equal(matcher("mail\\.example$")("mx.mail.example.com"), false);
});

Deno.test("start-up and check refuse a lookbehind with the file, the line and the reason", () => {
  assert.match(
    firstError("suffix:ok.example relay:a\n/(?<=mx)\\d+\\.example\\.com$/ relay:b\n"),
    /^\/etc\/r\.conf, line 2: bad regular expression \/\(\?<=mx\)\\d\+\\\.example\\\.com\$\/: lookbehind \(\?<= is not supported/,
  );
});

Deno.test("a rule over 256 RE2 instructions is refused with the file, the line and the limit", () => {
  // A label of up to 118 characters: 256 instructions, the most one rule may take; 119: 258.
  const atLimit = parseConfig(
    "/^[a-z0-9-]{1,118}\\.mail\\.example\\.com$/ relay:a\n",
    "/etc/r.conf",
  );
  assert.ok(atLimit.ok, "a rule of 256 instructions loads");
  assert.equal(atLimit.value.ruleSet.mxRules[0].cost, 256);
  assert.equal(
    firstError(
      "suffix:ok.example relay:a\n\n/^[a-z0-9-]{1,119}\\.mail\\.example\\.com$/ relay:b\n",
    ),
    "/etc/r.conf, line 3: bad regular expression /^[a-z0-9-]{1,119}\\.mail\\.example\\.com$/: " +
      "too large: it compiles to 258 RE2 instructions, over the limit of 256 per rule, which " +
      "bounds the time of a lookup; a bounded repeat such as {0,253} costs one copy of what it " +
      "repeats per count: use + or * instead, or a suffix: or exact: rule",
  );
});

Deno.test("iCloud's and Outlook's regexes load together: the limit is per rule, not per file", () => {
  const icloud = "/^mx\\d+\\.mail\\.icloud\\.com$/ relay:[icloud-relay.example]:587";
  const outlook = "/\\.mail\\.protection\\.outlook\\.com$/ relay:[o365-relay.example]:587";
  const parsed = parseConfig(
    `${icloud}\nsuffix:x.example relay:b\n${outlook}\n/^mx\\d+\\./ relay:d\n`,
    "/etc/r.conf",
  );
  assert.ok(parsed.ok, parsed.ok ? "" : formatConfigError(parsed.error[0]));
  assert.deepEqual(parsed.value.ruleSet.mxRules.map((rule) => rule.cost), [24, 0, 31, 8]);
  const found = matchRules(
    { hosts: ["tenant-com.mail.protection.outlook.com"], primaryCount: 1 },
    parsed.value.ruleSet.mxRules,
  );
  assert.equal(found !== null && "rule" in found ? found.rule.line : null, 3);
});

Deno.test("check prints each regex's size with the limit, and the MX name length the budget allows", () => {
  const parsed = parseConfig(
    "suffix:outlook.com relay:[a]:587\n/^mx\\d+\\./ smtp:[c]:25\n/\\.example\\.com$/ smtp:[d]:25\n",
    "/etc/r.conf",
  );
  assert.ok(parsed.ok);
  assert.deepEqual(describeRegexes(parsed.value.ruleSet), [
    "line 2: regex compiles to 8 RE2 instructions (limit 256)",
    "line 3: regex compiles to 15 RE2 instructions (limit 256)",
    `regex rules: 23 RE2 instructions together; every MX set is compared in full (even 16 ` +
    `names of 253 characters), in at most about ${WORST_LOOKUP_MS} ms`,
  ]);
  const plain = parseConfig("suffix:outlook.com relay:[a]:587\n", "/etc/r.conf");
  assert.ok(plain.ok);
  assert.deepEqual(describeRegexes(plain.value.ruleSet), []);
});
