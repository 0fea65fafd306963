/**
 * Issue 17, part 2, end to end: behind a real recursive resolver (Unbound in front of NSD), names
 * in a lame zone are never answered, as on a mail host during a spam run to dead domains. A
 * sequential client sends bursts of two such names between three fresh good names for 20 s: the
 * good names must all be answered, never `400 DNS not answering` because the dead ones timed out.
 * Then the resolver is stopped: a server that answers nothing is still skipped, new domains get
 * `400` at once, and the log says the server is down.
 *
 * @module
 */

import assert from "node:assert/strict";
import { isCi } from "../support/e2e_env.ts";
import { findBinary, LOOPBACK } from "../support/e2e_util.ts";
import { startRouter } from "../support/router_process.ts";
import { LineClient } from "../support/tcp_client.ts";
import { startUnboundNsd, UNBOUND_NSD_TOOLS } from "../support/unbound_nsd.ts";

const NAME = "e2e: dead names behind unbound never make the router defer good ones";
/** How long the alternating client runs. */
const RUN_MS = 20_000;
const RELAY = `relay:[${LOOPBACK}]:2525`;

const missing = UNBOUND_NSD_TOOLS.filter((tool) => findBinary(tool.name) === null);
const how = `install them: apt-get install ${UNBOUND_NSD_TOOLS.map((t) => t.pkg).join(" ")}`;

if (missing.length > 0 && !isCi()) {
  console.log(
    `%c${NAME}: skipped, missing ${missing.map((t) => t.name).join(", ")}; ${how}. ` +
      "With CI=true this is an error.",
    "color: yellow",
  );
}

Deno.test({
  name: NAME,
  ignore: missing.length > 0 && !isCi(),
  async fn(t) {
    if (missing.length > 0) {
      throw new Error(
        `CI=true and the test cannot run: missing ${missing.map((t) => t.name).join(", ")}; ${how}`,
      );
    }
    const tmp = await Deno.makeTempDir({ prefix: "mx-router-lame-" });
    const dns = await startUnboundNsd({
      dir: tmp,
      zones: [{
        name: "good.test",
        records: ["* IN MX 10 good-test.mail.protection.outlook.com."],
      }],
      lameZones: ["lame.test"],
    });
    let stopped = false;
    let router: Awaited<ReturnType<typeof startRouter>> | null = null;
    let client: LineClient | null = null;
    try {
      const configPath = `${tmp}/rules.conf`;
      await Deno.writeTextFile(configPath, `suffix:mail.protection.outlook.com ${RELAY}\n`);
      router = await startRouter({
        configPath,
        tmpDir: tmp,
        dnsServers: [dns.address],
        dnsTimeoutSeconds: 2,
        startTimeoutMs: 60_000,
      });
      client = await LineClient.connect(router.port);
      const lookup = (key: string) => client!.get(key);

      const runOk = await t.step(
        "20 s of two dead names between three fresh good names: every good one answers",
        async () => {
          const good = { answered: 0, deferred: [] as string[] };
          const dead = { deferred: 0, other: [] as string[] };
          const started = performance.now();
          for (let n = 0; performance.now() - started < RUN_MS; n++) {
            for (const i of [0, 1]) {
              const reply = await lookup(`user@dead${n}-${i}.lame.test`);
              if (reply?.startsWith("400 ")) dead.deferred++;
              else dead.other.push(String(reply));
            }
            for (const i of [0, 1, 2]) {
              const reply = await lookup(`user@new${n}-${i}.good.test`);
              if (reply === `200 ${RELAY.replaceAll(" ", "%20")}`) good.answered++;
              else good.deferred.push(`new${n}-${i}.good.test: ${reply}`);
            }
          }
          console.log(
            `${RUN_MS / 1000} s through unbound: ${good.answered} good names answered 200, ` +
              `${good.deferred.length} good names not; ${dead.deferred} dead names 400`,
          );
          assert.deepEqual(good.deferred, [], "no good name deferred");
          assert.ok(good.answered >= 12, `only ${good.answered} good names in ${RUN_MS} ms`);
          assert.deepEqual(dead.other, [], "every dead name deferred (400), none answered");
          assert.ok(dead.deferred >= 8);
          assert.doesNotMatch(router!.stderr(), /is down/, "the resolver was never marked down");
        },
      );

      const stopOk = await t.step(
        "the resolver stopped: marked down after a probe, new domains 400 at once",
        async () => {
          await dns.stop();
          stopped = true;
          const first = await lookup("user@after-stop-1.good.test");
          assert.match(first ?? "", /^400 /);
          // The liveness probe its first timeout sent has failed by the end of the lookup (give
          // it a moment); the next probe is a second away, so the next lookup does not wait.
          await new Promise((resolve) => setTimeout(resolve, 300));
          const begun = performance.now();
          const next = await lookup("user@after-stop-2.good.test");
          assert.ok(performance.now() - begun < 500, "at once, not after --dns-timeout");
          assert.match(next ?? "", /^400 DNS%20not%20answering:%20127\.0\.0\.1:\d+%20/);
          assert.match(router!.stderr(), /WARNING DNS server 127\.0\.0\.1:\d+ is down: /);
        },
      );
      if (!runOk || !stopOk) console.error(`router stderr:\n${router.stderr()}\n${dns.log()}`);
    } catch (error) {
      console.error(`router stderr:\n${router?.stderr()}\n${dns.log()}`);
      throw error;
    } finally {
      client?.close();
      await router?.stop();
      if (!stopped) await dns.stop();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
