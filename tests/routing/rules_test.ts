import assert from "node:assert/strict";
import { ruleSetOf as ruleSet } from "../support/rule_sets.ts";
import { formatConfigError, parseConfig } from "../../lib/routing/rules_file.ts";
import { REGEX_STEP_BUDGET, regexSteps } from "../../lib/routing/regex.ts";
import { makeMatcher, matchRules, type RuleSet } from "../../lib/routing/rules.ts";
import { PROVIDER_IDS } from "../../lib/routing/providers.ts";

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
  const rules = ruleSet("google.com first\noutlook.com second\nmx third\n").mxRules;
  const match = (...hosts: string[]) => {
    const found = matchRules({ hosts, primaryCount: 1 }, rules);
    assert.ok(found === null || "rule" in found);
    return found;
  };
  // The first host matches the second rule: host order beats rule order.
  assert.equal(match("a.outlook.com", "aspmx.google.com")?.rule.result, "second");
  // One host matching two rules: file order.
  assert.equal(match("mx.google.com")?.rule.result, "first");
  assert.equal(match("mx.google.com")?.host, "mx.google.com");
  assert.equal(match("other.example"), null);
  assert.equal(match(), null);
});

/** The result of the rule that decides for an MX set, or null. */
function decided(rules: RuleSet, hosts: string[], primaryCount = 1): string | null {
  const found = matchRules({ hosts, primaryCount }, rules.mxRules);
  if (found !== null && "exceeded" in found) throw new Error("over the regex budget");
  return found?.rule.result ?? null;
}

Deno.test("match modes on a hybrid MX set: any, primary, all", () => {
  // MX 10 the domain's own server, MX 20 Microsoft: only `any` sends it to the paid relay.
  const hybrid = ["mail.contoso.example", "contoso-example.mail.protection.outlook.com"];
  const text = (mode: string) => `${mode}provider:microsoft365 relay:[o365]:587\n`;
  assert.equal(decided(ruleSet(text("")), hybrid), "relay:[o365]:587", "any is the default");
  assert.equal(decided(ruleSet(text("any:")), hybrid), "relay:[o365]:587");
  assert.equal(decided(ruleSet(text("primary:")), hybrid), null);
  assert.equal(decided(ruleSet(text("all:")), hybrid), null);
  // Microsoft first: primary matches; all still needs every host.
  const reversed = [...hybrid].reverse();
  assert.equal(decided(ruleSet(text("primary:")), reversed), "relay:[o365]:587");
  assert.equal(decided(ruleSet(text("all:")), reversed), null);
  // Two primary hosts at the same preference: either decides under primary.
  assert.equal(decided(ruleSet(text("primary:")), hybrid, 2), "relay:[o365]:587");
  // Every host at Microsoft (both brands of its MX names): all matches.
  const allMicrosoft = ["a.mail.protection.outlook.com", "a-b.l-v1.mx.microsoft"];
  assert.equal(decided(ruleSet(text("all:")), allMicrosoft), "relay:[o365]:587");
});

Deno.test("the default match mode comes from --match-mode; a rule's own prefix wins", () => {
  const parsed = parseConfig(
    "provider:google g\nany:provider:microsoft365 m\n",
    "r.conf",
    { matchMode: "all" },
  );
  assert.ok(parsed.ok);
  assert.deepEqual(parsed.value.ruleSet.mxRules.map((rule) => rule.mode), ["all", "any"]);
  const hosts = ["aspmx.l.google.com", "x.mail.protection.outlook.com"];
  assert.equal(decided(parsed.value.ruleSet, hosts), "m");
});

Deno.test("provider: rules match the catalog's suffixes of that provider only", () => {
  const rules = ruleSet("provider:microsoft365 m\nprovider:google g\n");
  assert.equal(decided(rules, ["contoso-com.mail.protection.outlook.com"]), "m");
  assert.equal(decided(rules, ["contoso-com.l-v1.mx.microsoft"]), "m");
  assert.equal(decided(rules, ["aspmx.l.google.com"]), "g");
  assert.equal(decided(rules, ["mail.protection.outlook.com.attacker.example"]), null);
  assert.equal(decided(rules, ["hotmail-com.olc.protection.outlook.com"]), null);
});

Deno.test("regex comparisons stop at the lookup's step budget", () => {
  // 16 names of 253 characters against a regex of about 80 instructions: over 300,000 steps.
  const rules = ruleSet("/^(?:[a-z0-9-]+\\.){2,20}mail\\.example\\.com$/ relay:[r]:25\n");
  const cost = rules.mxRules[0].cost;
  assert.ok(cost > 0);
  const long = Array.from({ length: 16 }, (_, i) => `${i}`.padEnd(253, "a"));
  const found = matchRules({ hosts: long, primaryCount: 1 }, rules.mxRules);
  assert.ok(found !== null && "exceeded" in found, "over the budget");
  assert.ok(found.steps > REGEX_STEP_BUDGET);
  assert.ok(found.steps - regexSteps(cost, 253) <= REGEX_STEP_BUDGET, "stopped before it");
  // Real MX names are compared in full.
  assert.equal(decided(rules, ["mx1.a.b.mail.example.com"]), "relay:[r]:25");
  // Rules before the regex that match decide without touching it.
  const first = ruleSet("suffix:example.org s\n/^(?:[a-z]+\\.){3}x$/ r\n");
  assert.equal(decided(first, ["mx.example.org", ...long]), "s");
});

Deno.test("a thousand tiny regex rules: counted per comparison, and warned about at load", () => {
  const text = Array.from({ length: 1000 }, (_, i) => `/^x${i}y/ relay:[r]:25`).join("\n");
  const parsed = parseConfig(text + "\n", "r.conf");
  assert.ok(parsed.ok);
  // Each comparison costs a fixed part too, or 16 one-character names would cost almost nothing.
  const found = matchRules(
    { hosts: Array.from({ length: 16 }, (_, i) => String.fromCharCode(97 + i)), primaryCount: 1 },
    parsed.value.ruleSet.mxRules,
  );
  assert.ok(found !== null && "exceeded" in found);
  assert.match(
    formatConfigError(parsed.value.warnings[0]),
    /^r\.conf: warning: 1000 regex rules together are too costly: a domain with 10 MX names of 40 characters/,
  );
  // A handful of ordinary regex rules is far from it.
  const few = parseConfig("/^mx\\d+\\.mail\\.icloud\\.com$/ a\n/\\.pphosted\\.com$/ b\n", "r.conf");
  assert.ok(few.ok);
  assert.deepEqual(few.value.warnings, []);
});

Deno.test("a substring ending in a dot matches at the end of the name, as the original's did", () => {
  // The original compared with dnspython's "host." form: its rule "outlook.com." matched.
  const test = makeMatcher("substring", "protection.outlook.com.");
  assert.equal(test("contoso-com.mail.protection.outlook.com"), true);
  assert.equal(test("protection.outlook.com.attacker.example"), true, "inside the name too");
  assert.equal(test("protection.outlook.community.example"), false);
  const rules = ruleSet("outlook.com. relay:[o365]:587\n");
  assert.equal(decided(rules, ["x.mail.protection.outlook.com"]), "relay:[o365]:587");
});

Deno.test("with a rule for every provider, each host is matched by its own provider only", () => {
  const text = PROVIDER_IDS.map((id) => `provider:${id} r-${id}`).join("\n") + "\n";
  const rules = ruleSet(text);
  const hosts = ["mx.example.org", "aspmx.l.google.com"];
  assert.equal(decided(rules, hosts), "r-google");
  assert.equal(decided(ruleSet("all:provider:google g\n"), hosts), null);
});

Deno.test("the regex cost warning is sized for a large real MX set: 10 names of 40 characters", () => {
  // 20 rules of about 25 instructions: a Google Workspace-sized MX set already passes the budget.
  const many = Array.from({ length: 20 }, (_, i) => `/^mx${i}[a-z]+\\.mail\\.example\\.com$/ r`);
  const parsed = parseConfig(many.join("\n") + "\n", "r.conf");
  assert.ok(parsed.ok);
  assert.equal(parsed.value.warnings.length, 1);
  const hosts = Array.from({ length: 10 }, (_, i) => `mx${i}-abcdefghij.mail.example.org.example`);
  const found = matchRules({ hosts, primaryCount: 1 }, parsed.value.ruleSet.mxRules);
  assert.ok(found !== null && "exceeded" in found, "the warning was right: such a set defers");
});
