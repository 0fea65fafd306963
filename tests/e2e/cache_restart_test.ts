/**
 * Through real Postfix: with --cache-file, the router restarted while DNS is dead
 * (dnsmasq stopped) still routes mail to the domains it knew before the restart, from the first
 * message on; a domain it never saw waits in the queue (400: Postfix defers) instead of going
 * anywhere wrong.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DOMAINS, e2eTest, mailParts, sequence, waitDelivered } from "../support/e2e_env.ts";
import { waitFor } from "../support/e2e_util.ts";

const SENDER = "e2e-sender@does-not-exist.test";

e2eTest("with --cache-file, mail to known domains is routed right after a restart with DNS dead", {
  postfix: true,
  routerArgs: (tmp) => ["--cache-file", `${tmp}/router-cache`],
}, async (env, t) => {
  const step = sequence(t);
  const { postfix, relaySink, defaultSink } = mailParts(env);
  const relay: string[] = [];
  const dflt: string[] = [];
  const send = async (how: "smtp" | "sendmail", rcpt: string, sink: string[] | null) => {
    const result = how === "smtp"
      ? await postfix.sendSmtp({ from: SENDER, to: rcpt })
      : await postfix.sendmail({ from: SENDER, to: rcpt });
    assert.deepEqual(result.code, 0, `${how} to ${rcpt}: ${result.stderr}`);
    sink?.push(rcpt);
  };

  await step("before: the router learns the domains from DNS while routing mail", async () => {
    await send("smtp", `before@${DOMAINS.microsoft}`, relay);
    await send("smtp", `before@${DOMAINS.google}`, dflt);
    await send("smtp", `before@${DOMAINS.implicitMx}`, relay);
    await waitDelivered(env, { relay, dflt, emptyQueue: false });
  });

  await step("router stopped (cache saved), DNS stopped, router started again", async () => {
    assert.equal(await env.router.stop(), 0, "the router exits 0 on SIGTERM");
    await env.dns.stop();
    const router = await env.restartRouter();
    assert.match(router.stderr(), /router-cache: loaded [1-9]\d* fresh and 0 stale cached answers/);
  });

  await step("after: known domains are routed at once, a new one waits in the queue", async () => {
    await send("smtp", `after@${DOMAINS.microsoft}`, relay);
    await send("smtp", `after@${DOMAINS.google}`, dflt);
    await send("sendmail", `after-local@${DOMAINS.implicitMx}`, relay);
    // Never looked up: with DNS dead the router answers 400 and Postfix keeps the message.
    const unknown = `after-local@${DOMAINS.icloud}`;
    await send("sendmail", unknown, null);
    await waitDelivered(env, { relay, dflt, emptyQueue: false });
    assert.deepEqual((await relaySink.recipients()).sort(), [...relay].sort());
    assert.deepEqual((await defaultSink.recipients()).sort(), [...dflt].sort());
    await waitFor(async () => {
      const queued = (await postfix.queue()).flatMap((m) => m.recipients.map((r) => r.address));
      return queued.includes(unknown);
    }, {
      what: `${unknown} waiting in the queue`,
      timeoutMs: 10_000,
      intervalMs: 200,
      detail: async () => JSON.stringify(await postfix.queue()),
    });
  });
});
