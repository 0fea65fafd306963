/**
 * The router is restarted while Postfix runs. Postfix's tcp client notices
 * the closed connection, reconnects, and routing continues; mail submitted while the router was
 * down is delayed at worst, never misrouted or lost.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DOMAINS, e2eTest, mailParts, sequence, waitDelivered } from "../support/e2e_env.ts";

const SENDER = "e2e-sender@does-not-exist.test";

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
    await waitDelivered(env, { relay, dflt, emptyQueue: true });
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
    await waitDelivered(env, { relay, dflt, emptyQueue: true });
    assert.deepEqual((await relaySink.recipients()).sort(), [...relay].sort());
    assert.deepEqual((await defaultSink.recipients()).sort(), [...dflt].sort());
  });
});
