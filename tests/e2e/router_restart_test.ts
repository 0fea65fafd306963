/**
 * Scenario 5 of issue 4: the router is restarted while Postfix runs. Postfix's tcp client notices
 * the closed connection, reconnects, and routing continues; mail submitted while the router was
 * down is delayed at worst, never misrouted or lost.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DOMAINS, e2eTest, mailParts, sequence } from "../support/e2e_env.ts";
import type { E2eEnv } from "../support/e2e_env.ts";
import { waitFor } from "../support/e2e_util.ts";

const SENDER = "e2e-sender@does-not-exist.test";

/** Waits until every recipient is at its sink and the queue is empty, flushing now and then. */
async function waitDelivered(env: E2eEnv, relay: string[], dflt: string[]): Promise<void> {
  const { postfix, relaySink, defaultSink } = mailParts(env);
  let polls = 0;
  await waitFor(async () => {
    const relayNow = await relaySink.recipients();
    const defaultNow = await defaultSink.recipients();
    const done = relay.every((r) => relayNow.includes(r)) &&
      dflt.every((r) => defaultNow.includes(r));
    if (done && (await postfix.queue()).length === 0) return true;
    // A message deferred while the router was down is retried at the next flush.
    if (++polls % 10 === 0) await postfix.flush();
    return false;
  }, {
    what: `relay ${relay.join(",")} and default ${dflt.join(",")} delivered`,
    timeoutMs: 45_000,
    intervalMs: 200,
    detail: async () => JSON.stringify(await postfix.queue()),
  });
}

e2eTest("routing continues after the router restarts under a running Postfix", {
  postfix: true,
}, async (env, t) => {
  const step = sequence(t);
  const { postfix, relaySink, defaultSink } = mailParts(env);
  const relay: string[] = [];
  const dflt: string[] = [];
  const send = async (how: "smtp" | "sendmail", rcpt: string, sink: string[]) => {
    const result = how === "smtp"
      ? await postfix.sendSmtp({ from: SENDER, to: rcpt })
      : await postfix.sendmail({ from: SENDER, to: rcpt });
    assert.deepEqual(result.code, 0, `${how} to ${rcpt}: ${result.stderr}`);
    sink.push(rcpt);
  };

  await step("before: Postfix holds connections to the router and routes", async () => {
    await send("smtp", `before-smtp@${DOMAINS.microsoft}`, relay);
    await send("sendmail", `before-local@${DOMAINS.microsoft}`, relay);
    await send("smtp", `before-smtp@${DOMAINS.google}`, dflt);
    await waitDelivered(env, relay, dflt);
  });

  await step("router stopped and restarted: mail submitted meanwhile waits for it", async () => {
    const oldPid = env.router.pid;
    const code = await env.router.stop();
    assert.deepEqual(code, 0, "the router exits 0 on SIGTERM");
    // Locally submitted mail is accepted and waits for the router.
    await send("sendmail", `during-local@${DOMAINS.microsoft}`, relay);
    await send("sendmail", `during-local@${DOMAINS.google}`, dflt);
    const router = await env.restartRouter();
    assert.notEqual(router.pid, oldPid);
  });

  await step("after: routing continues over new connections", async () => {
    await send("smtp", `after-smtp@${DOMAINS.microsoft}`, relay);
    await send("smtp", `after-smtp@${DOMAINS.icloud}`, relay);
    await send("sendmail", `after-local@${DOMAINS.implicitMx}`, relay);
    await send("smtp", `after-smtp@${DOMAINS.noMx}`, dflt);
    await waitDelivered(env, relay, dflt);
    assert.deepEqual((await relaySink.recipients()).sort(), [...relay].sort());
    assert.deepEqual((await defaultSink.recipients()).sort(), [...dflt].sort());
  });
});
