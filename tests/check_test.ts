import assert from "node:assert/strict";
import { describeRuleSet } from "../lib/check.ts";
import { parseConfig } from "../lib/config.ts";

Deno.test("check lists each rule with its line and kind, and warns about substrings", () => {
  const parsed = parseConfig(
    "# rules\nsuffix:outlook.com relay:[a]:587\noutlook.com relay:[b]:587\n/^mx\\d+\\./ smtp:[c]:25\n",
    "/etc/r.conf",
  );
  assert.ok(parsed.ok);
  const report = describeRuleSet(parsed.ruleSet);
  assert.deepEqual(report.rules, [
    "line 2: suffix    outlook.com -> relay:[a]:587",
    "line 3: substring outlook.com -> relay:[b]:587",
    "line 4: regex     /^mx\\d+\\./ -> smtp:[c]:25",
  ]);
  assert.equal(report.warnings.length, 1);
  assert.match(
    report.warnings[0],
    /^\/etc\/r\.conf, line 3: warning: substring pattern "outlook\.com"/,
  );
  assert.match(report.warnings[0], /use "suffix:outlook\.com"/);
});
