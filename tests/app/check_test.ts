import assert from "node:assert/strict";
import { describeRuleSet } from "../../lib/app/check.ts";
import { parseConfig } from "../../lib/routing/rules_file.ts";

Deno.test("check lists each rule with its line and kind, and warns about substrings", () => {
  const parsed = parseConfig(
    "# rules\nsuffix:outlook.com relay:[a]:587\noutlook.com relay:[b]:587\n/^mx\\d+\\./ smtp:[c]:25\n",
    "/etc/r.conf",
  );
  assert.ok(parsed.ok);
  const report = describeRuleSet(parsed.value.ruleSet);
  assert.deepEqual(report.rules, [
    "line 2: suffix    outlook.com -> relay:[a]:587",
    "line 3: substring outlook.com -> relay:[b]:587",
    "line 4: regex     /^mx\\d+\\./ -> smtp:[c]:25",
  ]);
  assert.equal(report.warnings.length, 3);
  assert.match(
    report.warnings[0],
    /^\/etc\/r\.conf, line 3: warning: substring pattern "outlook\.com"/,
  );
  assert.match(report.warnings[0], /use "suffix:outlook\.com"/);
  // Both outlook.com rules catch Microsoft 365 hosts but leave its mx.microsoft ones out.
  assert.match(report.warnings[1], /line 2: warning: "suffix:outlook\.com" catches Microsoft/);
  assert.match(report.warnings[2], /line 3: warning: "outlook\.com" catches Microsoft/);
});

Deno.test("check names a provider's suffixes and warns about a rule covering part of one", () => {
  const parsed = parseConfig(
    "suffix:mail.protection.outlook.com relay:[o365]:587\n" +
      "primary:provider:google smtp:[g]:25\n" +
      "suffix:mx.icloud.com relay:[i]:587\nsuffix:icloud.com relay:[i]:587\n",
    "/etc/r.conf",
  );
  assert.ok(parsed.ok);
  const report = describeRuleSet(parsed.value.ruleSet);
  assert.equal(
    report.rules[1],
    "line 2: provider  google (google.com, googlemail.com) [primary] -> smtp:[g]:25",
  );
  // The Microsoft rule misses mx.microsoft; the iCloud rules together cover iCloud's one suffix.
  assert.deepEqual(report.warnings, [
    '/etc/r.conf, line 1: warning: "suffix:mail.protection.outlook.com" catches Microsoft 365 ' +
    "(Exchange Online) MX hosts under mail.protection.outlook.com but not under mx.microsoft, " +
    'which Microsoft 365 (Exchange Online) also uses; use "provider:microsoft365" to cover them all',
  ]);
});
