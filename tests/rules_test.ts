import assert from "node:assert/strict";
import { parseConfig } from "../lib/config.ts";
import { makeMatcher, matchRules } from "../lib/rules.ts";

Deno.test("substring matches anywhere, including lookalikes (the original's behaviour)", () => {
  const test = makeMatcher("substring", "outlook.com");
  assert.equal(test("x.mail.protection.outlook.com"), true);
  assert.equal(test("protection.outlook.com.attacker.example"), true);
  assert.equal(test("gmail.com"), false);
});

Deno.test("suffix matches the name and its subdomains at a label boundary only", () => {
  const test = makeMatcher("suffix", "outlook.com");
  assert.equal(test("outlook.com"), true);
  assert.equal(test("x.mail.protection.outlook.com"), true);
  assert.equal(test("protection.outlook.com.attacker.example"), false);
  assert.equal(test("notoutlook.com"), false);
});

Deno.test("exact matches one host only", () => {
  const test = makeMatcher("exact", "mx.example.com");
  assert.equal(test("mx.example.com"), true);
  assert.equal(test("mx.example.com.evil"), false);
  assert.equal(test("a.mx.example.com"), false);
});

Deno.test("regex is a case-insensitive RE2 regular expression", () => {
  const test = makeMatcher("regex", "^mx\\d+\\.mail\\.icloud\\.com$");
  assert.equal(test("mx01.mail.icloud.com"), true);
  assert.equal(test("MX01.MAIL.ICLOUD.COM"), true);
  assert.equal(test("mx.mail.icloud.com"), false);
});

Deno.test("hosts are tried in order, rules in file order; the first match wins", () => {
  const parsed = parseConfig("google.com first\noutlook.com second\nmx third\n", "r.conf");
  assert.ok(parsed.ok);
  const rules = parsed.ruleSet.rules;
  // The first host matches the second rule: host order beats rule order.
  assert.equal(matchRules(["a.outlook.com", "aspmx.google.com"], rules)?.rule.result, "second");
  // One host matching two rules: file order.
  assert.equal(matchRules(["mx.google.com"], rules)?.rule.result, "first");
  assert.equal(matchRules(["mx.google.com"], rules)?.host, "mx.google.com");
  assert.equal(matchRules(["other.example"], rules), null);
  assert.equal(matchRules([], rules), null);
});
