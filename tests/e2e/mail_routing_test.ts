/**
 * Scenario 3 of issue 4: Postfix routes real mail through the router. Mail to a Microsoft-MX
 * domain (and the other relay classes) arrives at the relay sink; mail to a Google-MX domain and
 * to a domain without MX arrives at the default sink; nothing is lost. Mail enters both ways
 * Postfix takes it: over SMTP (smtp-source to smtpd) and locally (sendmail, through pickup).
 *
 * @module
 */

import assert from "node:assert/strict";
import { DOMAINS, e2eTest, mailParts, sequence } from "../support/e2e_env.ts";
import type { E2eEnv } from "../support/e2e_env.ts";
import { waitFor } from "../support/e2e_util.ts";

const SENDER = "e2e-sender@does-not-exist.test";

/** Where each sent recipient is (one entry per place it was found). */
async function whereIs(env: E2eEnv): Promise<Map<string, string[]>> {
  const places = new Map<string, string[]>();
  const add = (rcpt: string, place: string) =>
    places.set(rcpt.toLowerCase(), [...places.get(rcpt.toLowerCase()) ?? [], place]);
  const { postfix, relaySink, defaultSink } = mailParts(env);
  for (const rcpt of await relaySink.recipients()) add(rcpt, "relay");
  for (const rcpt of await defaultSink.recipients()) add(rcpt, "default");
  for (const message of await postfix.queue()) {
    for (const r of message.recipients) add(r.address, `queue:${message.queue_name}`);
  }
  return places;
}

e2eTest("mail is routed to the sink the MX says, over SMTP and via sendmail", {
  postfix: true,
}, async (env, t) => {
  const step = sequence(t);
  const { postfix } = mailParts(env);
  const routes: Array<{ domain: string; sink: "relay" | "default" }> = [
    { domain: DOMAINS.microsoft, sink: "relay" },
    { domain: DOMAINS.icloud, sink: "relay" }, // two next hops: the space crosses tcp_table encoded
    { domain: DOMAINS.implicitMx, sink: "relay" },
    { domain: DOMAINS.google, sink: "default" },
    { domain: DOMAINS.noMx, sink: "default" },
  ];
  const sent: Array<{ rcpt: string; sink: string; how: string }> = [];

  await step("over SMTP: smtpd accepts every recipient", async () => {
    for (const [i, route] of routes.entries()) {
      for (let n = 0; n < 2; n++) {
        const rcpt = `smtp-${i}-${n}@${route.domain}`;
        const result = await postfix.sendSmtp({ from: SENDER, to: rcpt });
        assert.deepEqual(result.code, 0, `smtp-source to ${rcpt}: ${result.stderr}`);
        sent.push({ rcpt, sink: route.sink, how: "smtp" });
      }
    }
  });

  await step("locally: sendmail accepts every message", async () => {
    for (const [i, route] of routes.entries()) {
      for (let n = 0; n < 2; n++) {
        const rcpt = `local-${i}-${n}@${route.domain}`;
        const result = await postfix.sendmail({ from: SENDER, to: rcpt });
        assert.deepEqual(result.code, 0, `sendmail to ${rcpt}: ${result.stderr}`);
        sent.push({ rcpt, sink: route.sink, how: "sendmail" });
      }
    }
  });

  await step("every message arrives at its sink, once; the queue is empty", async () => {
    const places = await waitFor(async () => {
      const now = await whereIs(env);
      const done = sent.every((s) => now.get(s.rcpt)?.some((p) => !p.startsWith("queue")));
      return done && (await postfix.queue()).length === 0 ? now : undefined;
    }, {
      what: `${sent.length} messages at the sinks and an empty queue`,
      timeoutMs: 30_000,
      intervalMs: 200,
      detail: async () => JSON.stringify(Object.fromEntries(await whereIs(env))),
    });
    for (const s of sent) {
      assert.deepEqual(places.get(s.rcpt), [s.sink], `${s.how} to ${s.rcpt}`);
    }
    assert.deepEqual(places.size, sent.length, "the sinks hold exactly the messages sent");
  });
});
