/**
 * Issue 16 part 1, end to end: Postfix asks a tcp: table only for the full address, and asks
 * every table of `transport_maps` for it before any table for the domain, so a domain entry in
 * /etc/postfix/transport never beats the router's answer. A `domain:` rule in the router does.
 *
 * A private Postfix with `transport_maps = hash:DIR/transport, tcp:127.0.0.1:ROUTER` delivers
 * real mail to five smtp-sinks:
 * - user@contoso.test (MX at Microsoft) reaches sink B: `domain:contoso.test` wins over the
 *   Microsoft rule, without a DNS query;
 * - special@contoso.test reaches sink C: a full-address entry of the hash file, listed first, still
 *   wins over the router;
 * - user@x.sub.test (MX at Microsoft) reaches sink D: `domain:.sub.test DUNNO` answers "not
 *   found", so Postfix goes on to the hash file's domain entry for x.sub.test;
 * - user@y.sub.test (MX at Microsoft, no hash entry) reaches the default sink through DUNNO;
 * - user@fabrikam.test (MX at Microsoft) reaches the relay sink although the hash file has a
 *   domain entry for fabrikam.test (why overrides must live in the router), and
 *   user@google-hosted.test the default sink: everything else routes as before.
 *
 * Needs root and the Debian package postfix; skipped without them, failed with CI=true.
 *
 * @module
 */

import assert from "node:assert/strict";
import { postfixTest, sequence } from "../support/e2e_env.ts";
import { LOOPBACK, requireBinary, run, waitFor } from "../support/e2e_util.ts";
import { type FakeDnsBehaviour, startFakeDns } from "../support/fake_dns.ts";
import {
  type SmtpSink,
  startPostfix,
  startSmtpSink,
  whereIs,
  writePostmapConfig,
} from "../support/postfix.ts";
import { type RouterProcess, startRouter } from "../support/router_process.ts";

const NAME = "e2e: a domain: rule in the router beats the Microsoft MX rule; DUNNO lets " +
  "Postfix's own transport table decide; a full-address hash entry still wins";
const SENDER = "e2e-sender@does-not-exist.test";

const microsoft = (domain: string): FakeDnsBehaviour => ({
  kind: "mx",
  records: [{
    preference: 10,
    exchange: `${domain.replaceAll(".", "-")}.mail.protection.outlook.com`,
  }],
});

const ZONE: Record<string, FakeDnsBehaviour> = {
  "contoso.test": microsoft("contoso.test"),
  "fabrikam.test": microsoft("fabrikam.test"),
  "x.sub.test": microsoft("x.sub.test"),
  "y.sub.test": microsoft("y.sub.test"),
  "google-hosted.test": {
    kind: "mx",
    records: [{ preference: 1, exchange: "aspmx.l.google.com" }],
  },
};

/** Sink names. */
type SinkName = "relay" | "default" | "b" | "c" | "d";

/** Where each recipient must arrive. */
const ROUTES: Array<{ rcpt: string; sink: SinkName; why: string }> = [
  { rcpt: "user@contoso.test", sink: "b", why: "domain:contoso.test beats the Microsoft rule" },
  { rcpt: "special@contoso.test", sink: "c", why: "the hash file's full-address entry" },
  { rcpt: "user@x.sub.test", sink: "d", why: "DUNNO, then the hash file's domain entry" },
  { rcpt: "user@y.sub.test", sink: "default", why: "DUNNO, no hash entry: default_transport" },
  {
    rcpt: "user@fabrikam.test",
    sink: "relay",
    why: "the router's answer for the address beats the hash file's domain entry",
  },
  { rcpt: "user@google-hosted.test", sink: "default", why: "no rule matches, as before" },
];

/** Domains a domain: rule answers: the router must never ask DNS about them. */
const NO_DNS = ["contoso.test", "x.sub.test", "y.sub.test"];

async function routeMail(t: Deno.TestContext, tmp: string, cleanups: Array<() => unknown>) {
  const dns = await startFakeDns({ zone: ZONE });
  cleanups.push(() => dns.close());
  const sinks = {} as Record<SinkName, SmtpSink>;
  for (const name of ["relay", "default", "b", "c", "d"] as const) {
    sinks[name] = await startSmtpSink({ dir: `${tmp}/sink-${name}`, name });
    cleanups.push(() => sinks[name].stop());
  }
  const to = (name: SinkName) => `smtp:[${LOOPBACK}]:${sinks[name].port}`;

  const configPath = `${tmp}/postfix-mx-pattern-router.conf`;
  await Deno.writeTextFile(
    configPath,
    [
      `suffix:mail.protection.outlook.com relay:[${LOOPBACK}]:${sinks.relay.port}`,
      `domain:contoso.test ${to("b")}`,
      "domain:.sub.test DUNNO",
      "",
    ].join("\n"),
  );
  const router: RouterProcess = await startRouter({
    configPath,
    tmpDir: tmp,
    dnsServers: [`${LOOPBACK}:${dns.port}`],
    dnsTimeoutSeconds: 1,
    startTimeoutMs: 60_000,
  });
  cleanups.push(() => router.stop());

  // Postfix's own transport table, listed before the router.
  const transport = `${tmp}/transport`;
  await Deno.writeTextFile(
    transport,
    `special@contoso.test ${to("c")}\nx.sub.test ${to("d")}\nfabrikam.test ${to("d")}\n`,
  );
  const postmapDir = await writePostmapConfig(`${tmp}/postmap`);
  const built = await run(requireBinary("postmap", "postfix"), {
    args: ["-c", postmapDir, `hash:${transport}`],
  });
  assert.equal(built.code, 0, `postmap hash:${transport}: ${built.stderr}`);

  const postfix = await startPostfix({
    dir: `${tmp}/postfix`,
    transportMaps: `hash:${transport}, ${router.table}`,
    defaultTransport: to("default"),
  });
  cleanups.push(() => postfix.stop());
  const diagnostics = async () =>
    `router stderr:\n${router.stderr()}\nmaillog:\n${
      (await postfix.maillog()).split("\n").slice(-40).join("\n")
    }`;

  const step = sequence(t);
  await step("every recipient is accepted, over SMTP and through sendmail", async () => {
    for (const { rcpt } of ROUTES) {
      const smtp = await postfix.sendSmtp({ from: SENDER, to: rcpt });
      assert.equal(smtp.code, 0, `smtp-source to ${rcpt}: ${smtp.stderr}`);
      const local = await postfix.sendmail({ from: SENDER, to: rcpt });
      assert.equal(local.code, 0, `sendmail to ${rcpt}: ${local.stderr}`);
    }
  });

  await step("both messages of each recipient arrive at its sink; the queue is empty", async () => {
    const places = await waitFor(async () => {
      const now = await whereIs(sinks, postfix);
      const arrived = ROUTES.every(({ rcpt }) =>
        (now.get(rcpt) ?? []).filter((place) => !place.startsWith("queue")).length === 2
      );
      return arrived && (await postfix.queue()).length === 0 ? now : undefined;
    }, {
      what: `${ROUTES.length * 2} messages at the sinks and an empty queue`,
      timeoutMs: 30_000,
      intervalMs: 200,
      detail: async () =>
        `${
          JSON.stringify(Object.fromEntries(await whereIs(sinks, postfix)))
        }\n${await diagnostics()}`,
    });
    for (const { rcpt, sink, why } of ROUTES) {
      assert.deepEqual(places.get(rcpt), [sink, sink], `${rcpt}: ${why}`);
    }
    assert.equal(places.size, ROUTES.length, "the sinks hold exactly the messages sent");
  });

  await step("the domains domain: rules answer were never asked of DNS", () => {
    for (const domain of NO_DNS) assert.equal(dns.queriesFor(domain), 0, domain);
    assert.ok(dns.queriesFor("fabrikam.test") > 0, "the other domains are looked up");
    return Promise.resolve();
  });
}

postfixTest(NAME, "mx-router-e2e-override-", routeMail);
