/**
 * Scenario 4 of issue 4: a domain whose DNS answers SERVFAIL (or nothing) is never delivered
 * anywhere. Over SMTP Postfix refuses the recipient with `451 4.3.0 Temporary lookup failure` (the
 * sender retries); submitted locally the message stays in the queue, deferred with "address
 * resolver failure". When the DNS answer becomes good and the queue is flushed, the queued message
 * arrives at the right sink.
 *
 * A router that turned SERVFAIL into 500 ("not found") would send these messages to the default
 * sink: every step below would fail.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DOMAINS, e2eTest, mailParts, sequence } from "../support/e2e_env.ts";
import type { E2eEnv } from "../support/e2e_env.ts";
import { delay, WaitAborted, waitFor } from "../support/e2e_util.ts";

const SENDER = "e2e-sender@does-not-exist.test";

async function allSinkRecipients(env: E2eEnv): Promise<string[]> {
  const { relaySink, defaultSink } = mailParts(env);
  return [...await relaySink.recipients(), ...await defaultSink.recipients()];
}

e2eTest("a SERVFAIL domain is deferred, never misrouted, and delivered once DNS is fixed", {
  postfix: true,
}, async (env, t) => {
  const step = sequence(t);
  const { postfix, relaySink, defaultSink } = mailParts(env);
  const flakyLocal = `queued@${DOMAINS.flaky}`;
  const servfailLocal = `queued@${DOMAINS.servfail}`;

  await step("over SMTP the recipient is refused with 451 4.3.0", async () => {
    for (const domain of [DOMAINS.servfail, DOMAINS.silent, DOMAINS.flaky]) {
      const rcpt = `smtp@${domain}`;
      const result = await postfix.sendSmtp({ from: SENDER, to: rcpt });
      assert.notEqual(result.code, 0, `smtp-source to ${rcpt} must fail: ${result.stderr}`);
      assert.match(result.stderr, /451 4\.3\.0 .*Temporary lookup failure/, rcpt);
    }
  });

  await step("submitted locally, it is deferred with 'address resolver failure'", async () => {
    for (const rcpt of [flakyLocal, servfailLocal]) {
      const result = await postfix.sendmail({ from: SENDER, to: rcpt });
      assert.deepEqual(result.code, 0, `sendmail to ${rcpt}: ${result.stderr}`);
    }
    const queue = await waitFor(async () => {
      const delivered = await allSinkRecipients(env);
      if (delivered.length > 0) throw new WaitAborted(`misrouted to a sink: ${delivered}`);
      const q = await postfix.queue();
      const deferred = q.filter((m) =>
        m.queue_name === "deferred" &&
        m.recipients.some((r) => r.delay_reason === "address resolver failure")
      );
      return deferred.length === 2 ? q : undefined;
    }, {
      what: "both local messages deferred with 'address resolver failure'",
      timeoutMs: 20_000,
      intervalMs: 200,
      detail: async () => JSON.stringify(await postfix.queue()),
    });
    const queued = queue.flatMap((m) => m.recipients.map((r) => r.address)).sort();
    assert.deepEqual(queued, [flakyLocal, servfailLocal].sort());
  });

  await step("nothing reached any sink", async () => {
    // Let any misrouted delivery land before looking.
    await delay(500);
    assert.deepEqual(await allSinkRecipients(env), []);
  });

  await step("once DNS answers, a flush delivers the queued message to the relay", async () => {
    env.fixFlaky();
    // The router answers a failed lookup from its failure cache for --failure-ttl (10 s by
    // default), as Postfix would simply retry later: flush until the message goes out.
    await waitFor(async () => {
      if ((await relaySink.recipients()).includes(flakyLocal)) return true;
      await postfix.flush();
      return false;
    }, {
      what: `${flakyLocal} at the relay sink after the DNS fix`,
      timeoutMs: 45_000,
      intervalMs: 2000,
      detail: async () => JSON.stringify(await postfix.queue()),
    });
    assert.deepEqual(await defaultSink.recipients(), []);
    assert.deepEqual(await relaySink.recipients(), [flakyLocal]);
  });

  await step("the still-failing domain stays deferred and undelivered", async () => {
    await postfix.flush();
    await delay(1000);
    const queue = await postfix.queue();
    assert.deepEqual(queue.length, 1, JSON.stringify(queue));
    assert.deepEqual(queue[0].recipients.map((r) => r.address), [servfailLocal]);
    assert.ok(!(await allSinkRecipients(env)).includes(servfailLocal));
  });
});
