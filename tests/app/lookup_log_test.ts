/**
 * The log line of a decision that changed (issue 19): where the domain routed and routes, then
 * the old and the new answer with their rule lines and MX hosts, escaped.
 *
 * @module
 */

import assert from "node:assert/strict";
import { decisionChangeText } from "../../lib/app/lookup_log.ts";
import type { MxOutcome } from "../../lib/dns/types.ts";
import { decide, type DecisionChange, routeLabel } from "../../lib/routing/router.ts";
import { parseConfig } from "../../lib/routing/rules_file.ts";

const parsed = parseConfig(
  "provider:google relay:[google-relay.example]:587\n" +
    "provider:microsoft365 relay:[o365-relay.example]:587\n" +
    "exact:mx.dunno.example DUNNO\n",
  "test.conf",
);
if (!parsed.ok) throw new Error(JSON.stringify(parsed.error));
const RULES = parsed.value.ruleSet;

function change(domain: string, before: MxOutcome, after: MxOutcome): DecisionChange {
  const previous = decide(domain, before, RULES);
  const next = decide(domain, after, RULES);
  return { domain, previous, next, from: routeLabel(previous), to: routeLabel(next) };
}

const mx = (...hosts: string[]): MxOutcome => ({ kind: "mx", hosts, ttl: 300 });

Deno.test("a change names both routes, both answers with their lines, and the MX hosts", () => {
  assert.equal(
    decisionChangeText(
      change(
        "contoso.com",
        mx("aspmx.l.google.com", "alt1.aspmx.l.google.com"),
        mx("contoso-com.mail.protection.outlook.com"),
      ),
    ),
    "domain contoso.com: google -> microsoft365 (was relay:[google-relay.example]:587 by line 1, " +
      "MX aspmx.l.google.com,alt1.aspmx.l.google.com; now relay:[o365-relay.example]:587 by line 2, " +
      "MX contoso-com.mail.protection.outlook.com)",
  );
});

Deno.test("not found says why: no rule, a DUNNO rule, or no MX host at all", () => {
  const from = mx("contoso-com.mail.protection.outlook.com");
  assert.equal(
    decisionChangeText(change("contoso.com", from, mx("mail.contoso.com"))),
    "domain contoso.com: microsoft365 -> none (was relay:[o365-relay.example]:587 by line 2, " +
      "MX contoso-com.mail.protection.outlook.com; now not found (no rule matches the MX hosts), " +
      "MX mail.contoso.com)",
  );
  assert.match(
    decisionChangeText(change("contoso.com", from, mx("mx.dunno.example"))),
    /; now not found by line 3 \(DUNNO\), MX mx\.dunno\.example\)$/,
  );
  assert.match(
    decisionChangeText(change("contoso.com", from, { kind: "nxdomain", negativeTtl: 60 })),
    /; now not found \(NXDOMAIN: no such domain\), no MX host\)$/,
  );
});

Deno.test("control characters in MX host names are escaped", () => {
  const text = decisionChangeText(
    change("contoso.com", mx("evil\nhost.example"), mx("x.mx.microsoft")),
  );
  assert.ok(!text.includes("\n"), text);
  assert.match(text, /MX evil\\x0ahost\.example;/);
});
