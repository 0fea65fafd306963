/**
 * Issue 19, end to end: provider rules and match modes route real mail through Postfix, and a
 * domain that moves to Microsoft is logged and counted when its cached answer is refreshed.
 *
 * A private Postfix with `transport_maps = tcp:127.0.0.1:ROUTER` delivers to two smtp-sinks, the
 * relay (the rule's result) and the default transport, over a fake DNS server:
 * - with the one rule `provider:microsoft365 relay:[...]` (mode any), mail to dane.test (MX at
 *   `*.mx.microsoft`, the DANE endpoints) and to eop.test (MX at
 *   `*.mail.protection.outlook.com`) reaches the relay, and so does hybrid.test (its own server at
 *   MX 10, Microsoft at MX 20: one Microsoft host is enough), while google-hosted.test and
 *   moving.test (Google, no rule) reach the default sink;
 * - reloaded with `primary:provider:microsoft365 relay:[...]`, dane.test and eop.test still reach
 *   the relay, but hybrid.test goes to the default transport: only its MX 10 decides;
 * - moving.test then moves to Microsoft in DNS (a 1 s TTL, --min-ttl 1): the next message reaches
 *   the relay, the router logs `domain moving.test: none -> microsoft365 (...)` once, and
 *   `mxrouter_decision_changes_total{from="none",to="microsoft365"}` is 1.
 *
 * Needs root and the Debian package postfix; skipped without them, failed with CI=true.
 *
 * @module
 */

import assert from "node:assert/strict";
import { postfixTest, sequence } from "../support/e2e_env.ts";
import { delay, freePort, LOOPBACK, waitFor } from "../support/e2e_util.ts";
import { type FakeDnsBehaviour, startFakeDns } from "../support/fake_dns.ts";
import {
  type PostfixInstance,
  type SmtpSink,
  startPostfix,
  startSmtpSink,
  whereIs,
} from "../support/postfix.ts";
import { type RouterProcess, startRouter } from "../support/router_process.ts";

const NAME = "e2e: one provider:microsoft365 rule routes *.mx.microsoft and " +
  "*.mail.protection.outlook.com domains to the relay; primary: sends a hybrid domain to the " +
  "default transport; a domain moving to Microsoft is logged and counted";
const SENDER = "e2e-sender@does-not-exist.test";

const mx = (...records: [number, string][]): FakeDnsBehaviour => ({
  kind: "mx",
  records: records.map(([preference, exchange]) => ({ preference, exchange })),
  // One second, so the moving domain is asked again within the test (with --min-ttl 1).
  ttl: 1,
});

const ZONE: Record<string, FakeDnsBehaviour> = {
  "dane.test": mx([10, "dane-test.j-v1.mx.microsoft"]),
  "eop.test": mx([10, "eop-test.mail.protection.outlook.com"]),
  "hybrid.test": mx([10, "mail.hybrid.test"], [20, "hybrid-test.mail.protection.outlook.com"]),
  "google-hosted.test": mx([1, "aspmx.l.google.com"], [5, "alt1.aspmx.l.google.com"]),
  "moving.test": mx([1, "aspmx.l.google.com"]),
};

type SinkName = "relay" | "default";

/** One message per route over SMTP; then each must reach its sink, once, and the queue empty. */
async function deliver(
  routes: { rcpt: string; sink: SinkName; why: string }[],
  sinks: Record<SinkName, SmtpSink>,
  postfix: PostfixInstance,
  diagnostics: () => Promise<string>,
): Promise<void> {
  for (const { rcpt } of routes) {
    const smtp = await postfix.sendSmtp({ from: SENDER, to: rcpt });
    assert.equal(smtp.code, 0, `smtp-source to ${rcpt}: ${smtp.stderr}\n${await diagnostics()}`);
  }
  const places = await waitFor(async () => {
    const now = await whereIs(sinks, postfix);
    const arrived = routes.every(({ rcpt }) =>
      (now.get(rcpt) ?? []).some((place) => !place.startsWith("queue"))
    );
    return arrived && (await postfix.queue()).length === 0 ? now : undefined;
  }, {
    what: `${routes.length} messages at the sinks and an empty queue`,
    timeoutMs: 30_000,
    intervalMs: 200,
    detail: async () =>
      `${
        JSON.stringify(Object.fromEntries(await whereIs(sinks, postfix)))
      }\n${await diagnostics()}`,
  });
  for (const { rcpt, sink, why } of routes) {
    assert.deepEqual(places.get(rcpt), [sink], `${rcpt}: ${why}`);
  }
}

async function routeMail(t: Deno.TestContext, tmp: string, cleanups: Array<() => unknown>) {
  const dns = await startFakeDns({ zone: ZONE });
  cleanups.push(() => dns.close());
  const sinks = {} as Record<SinkName, SmtpSink>;
  for (const name of ["relay", "default"] as const) {
    sinks[name] = await startSmtpSink({ dir: `${tmp}/sink-${name}`, name });
    cleanups.push(() => sinks[name].stop());
  }
  const relay = `relay:[${LOOPBACK}]:${sinks.relay.port}`;
  const configPath = `${tmp}/postfix-mx-pattern-router.conf`;
  await Deno.writeTextFile(configPath, `provider:microsoft365 ${relay}\n`);
  const metricsPort = await freePort();
  const router: RouterProcess = await startRouter({
    configPath,
    tmpDir: tmp,
    dnsServers: [`${LOOPBACK}:${dns.port}`],
    dnsTimeoutSeconds: 1,
    args: ["--min-ttl", "1", "--metrics", `${LOOPBACK}:${metricsPort}`],
    startTimeoutMs: 60_000,
  });
  cleanups.push(() => router.stop());
  const postfix = await startPostfix({
    dir: `${tmp}/postfix`,
    transportMaps: router.table,
    defaultTransport: `smtp:[${LOOPBACK}]:${sinks.default.port}`,
  });
  cleanups.push(() => postfix.stop());
  const diagnostics = async () =>
    `router stderr:\n${router.stderr()}\nmaillog:\n${
      (await postfix.maillog()).split("\n").slice(-40).join("\n")
    }`;
  const scrape = async () =>
    await (await fetch(`http://${LOOPBACK}:${metricsPort}/metrics`)).text();

  const step = sequence(t);
  await step(
    "provider:microsoft365 (any): both Microsoft MX families and the hybrid reach the relay",
    async () => {
      await deliver(
        [
          { rcpt: "a@dane.test", sink: "relay", why: "MX at *.mx.microsoft" },
          { rcpt: "a@eop.test", sink: "relay", why: "MX at *.mail.protection.outlook.com" },
          { rcpt: "a@hybrid.test", sink: "relay", why: "mode any: its Microsoft MX 20 matches" },
          { rcpt: "a@google-hosted.test", sink: "default", why: "no rule for Google" },
          { rcpt: "a@moving.test", sink: "default", why: "still at Google" },
        ],
        sinks,
        postfix,
        diagnostics,
      );
    },
  );

  await step(
    "primary:provider:microsoft365 after a reload: the hybrid goes to the default transport",
    async () => {
      await Deno.writeTextFile(configPath, `primary:provider:microsoft365 ${relay}\n`);
      router.kill("SIGHUP");
      await waitFor(() => router.stderr().includes("reloaded 1 rule from") ? true : undefined, {
        what: "the router's reload line",
        timeoutMs: 10_000,
        intervalMs: 50,
        detail: () => Promise.resolve(router.stderr()),
      });
      await deliver(
        [
          { rcpt: "b@dane.test", sink: "relay", why: "its only MX is at Microsoft" },
          { rcpt: "b@eop.test", sink: "relay", why: "its only MX is at Microsoft" },
          { rcpt: "b@hybrid.test", sink: "default", why: "mode primary: its own MX 10 decides" },
          // Asked again under the new rules (its answer expired): still at Google, nothing changed.
          { rcpt: "b@moving.test", sink: "default", why: "still at Google" },
        ],
        sinks,
        postfix,
        diagnostics,
      );
    },
  );

  await step(
    "moving.test moves to Microsoft: routed to the relay, logged once and counted",
    async () => {
      dns.setZone("moving.test", mx([10, "moving-test.j-v1.mx.microsoft"]));
      await delay(1500); // the cached Google answer expires
      await deliver(
        [
          { rcpt: "c@moving.test", sink: "relay", why: "now at Microsoft" },
          { rcpt: "d@moving.test", sink: "relay", why: "answered from the refreshed entry" },
        ],
        sinks,
        postfix,
        diagnostics,
      );
      const metrics = await scrape();
      assert.match(
        metrics,
        /^mxrouter_decision_changes_total\{from="none",to="microsoft365"\} 1$/m,
      );
      assert.deepEqual(
        metrics.split("\n").filter((line) => line.startsWith("mxrouter_decision_changes_total{")),
        ['mxrouter_decision_changes_total{from="none",to="microsoft365"} 1'],
      );
      assert.match(
        metrics,
        /^mxrouter_lookups_total\{result="match",provider="microsoft365"\} [1-9]/m,
      );
      assert.match(metrics, /^mxrouter_lookups_total\{result="nomatch",provider="google"\} [1-9]/m);
      assert.match(metrics, /^mxrouter_lookups_total\{result="nomatch",provider="other"\} [1-9]/m);
      assert.match(
        metrics,
        /^mxrouter_rule_matches_total\{line="1",provider="microsoft365"\} [1-9]/m,
      );
      // Stopped, the router has written every line (lines are flushed every 20 ms).
      await router.stop();
      const changes = router.stderr().split("\n").filter((line) => / INFO domain \S+: /.test(line));
      assert.equal(changes.length, 1, `one decision change in all:\n${await diagnostics()}`);
      assert.match(
        changes[0],
        new RegExp(
          "domain moving\\.test: none -> microsoft365 \\(was not found \\(no rule matches the MX " +
            "hosts\\), MX aspmx\\.l\\.google\\.com; now " + relay.replace(/[.[\]]/g, "\\$&") +
            " by line 1, MX moving-test\\.j-v1\\.mx\\.microsoft\\)$",
        ),
      );
      assert.doesNotMatch(metrics, /\.test/, "no domain names in labels");
    },
  );
}

postfixTest(NAME, "mx-router-e2e-providers-", routeMail);
