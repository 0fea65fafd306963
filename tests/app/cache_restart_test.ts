/**
 * --cache-file in the real router process (the compile task's permissions) over real sockets:
 * domains looked up before a stop are routed right after a restart with DNS gone, unknown ones
 * get 400, and a cache file that is damaged or writable by others is logged and ignored, never
 * fatal. The cache file lives behind a symbolic link into a directory the router may not read,
 * as systemd's StateDirectory= under DynamicUser= puts it (/var/lib/X -> /var/lib/private/X).
 */

import assert from "node:assert/strict";
import { startFakeDns } from "../support/fake_dns.ts";
import type { FakeDnsBehaviour } from "../support/fake_dns.ts";
import { type RouterProcess, startRouter } from "../support/router_process.ts";
import { LineClient } from "../support/tcp_client.ts";

const RULES = "suffix:mail.protection.outlook.com relay:[o365.example]:587\n";
const O365 = "200 relay:[o365.example]:587";
const NOT_FOUND = "500 NO%20RESULT";

const mx = (exchange: string, ttl = 300): FakeDnsBehaviour => ({
  kind: "mx",
  records: [{ preference: 10, exchange }],
  ttl,
});

const ZONE: Record<string, FakeDnsBehaviour> = {
  "contoso.test": mx("contoso-test.mail.protection.outlook.com"),
  "other.test": mx("mx.other.test"),
  "gone.test": { kind: "nxdomain", soa: { ttl: 300, minimum: 300 } },
  // Expired by the time the router starts again: answered stale.
  "short.test": mx("short-test.mail.protection.outlook.com", 1),
  "new.test": mx("new-test.mail.protection.outlook.com"),
};

/** Asks the router for each key on one connection; returns the replies in order. */
async function ask(router: RouterProcess, keys: string[]): Promise<(string | null)[]> {
  const client = await LineClient.connect(router.port);
  try {
    const replies = [];
    for (const key of keys) replies.push(await client.get(key));
    return replies;
  } finally {
    client.close();
  }
}

Deno.test("--cache-file: after a restart with DNS gone, known domains route, unknown ones get 400", async (t) => {
  const tmpDir = await Deno.makeTempDir({ prefix: "mxrouter-cache-" });
  // Outside the paths the router may use; reached only through the link, like /var/lib/private.
  const privateDir = await Deno.makeTempDir({ prefix: "mxrouter-cache-private-" });
  const dns = await startFakeDns({ zone: ZONE });
  let router: RouterProcess | null = null;
  try {
    await Deno.writeTextFile(`${tmpDir}/rules.conf`, RULES);
    await Deno.symlink(privateDir, `${tmpDir}/state`);
    const cacheFile = `${tmpDir}/state/cache`;
    const start = (extra: string[] = []) =>
      startRouter({
        configPath: `${tmpDir}/rules.conf`,
        tmpDir,
        dnsServers: [`127.0.0.1:${dns.port}`],
        dnsTimeoutSeconds: 0.6,
        args: ["--cache-file", cacheFile, "--min-ttl", "1", "--stale-answer-ms", "100", ...extra],
      });

    await t.step("first run: looked up from DNS, saved on SIGTERM", async () => {
      router = await start();
      assert.match(
        router.stderr(),
        /cache: no cache file yet; it is written on stop and every 5 minutes/,
      );
      assert.deepEqual(
        await ask(router, ["a@contoso.test", "a@other.test", "a@gone.test", "a@short.test"]),
        [O365, NOT_FOUND, NOT_FOUND, "200 relay:[o365.example]:587"],
      );
      assert.equal(await router.stop(), 0);
      router = null;
      const stat = await Deno.stat(cacheFile);
      assert.equal(stat.mode! & 0o777, 0o600);
      const lines = (await Deno.readTextFile(cacheFile)).split("\n");
      assert.equal(lines[0], "postfix-mx-pattern-router cache 1");
      assert.equal(lines.at(-2), "end 4");
    });

    await dns.close();
    // short.test's TTL of 1 s runs out.
    await new Promise((resolve) => setTimeout(resolve, 1100));

    await t.step("DNS gone: known domains answer from the cache, unknown ones 400", async () => {
      router = await start();
      assert.match(
        router.stderr(),
        /cache: loaded 3 fresh and 1 stale cached answers in \d+ ms \(0 older than --stale-ttl dropped\)/,
      );
      const log = router.stderr();
      assert.ok(log.indexOf("cached answers") < log.indexOf("listening on"), "loaded first");
      const [contoso, other, gone, short, unknown] = await ask(router, [
        "b@contoso.test",
        "b@other.test",
        "b@gone.test",
        "b@short.test",
        "b@new.test",
      ]);
      assert.equal(contoso, O365);
      assert.equal(other, NOT_FOUND);
      assert.equal(gone, NOT_FOUND);
      assert.equal(short, O365, "expired, within --stale-ttl: answered stale");
      assert.match(unknown ?? "", /^400 /);
      assert.match(router.stderr(), /lookup b@contoso\.test domain=contoso\.test .* source=cache/);
      assert.match(router.stderr(), /lookup b@short\.test domain=short\.test .* source=stale/);
      assert.equal(await router.stop(), 0);
      router = null;
    });

    await t.step("--cache-ttl 0: the cache file is neither read nor overwritten", async () => {
      const saved = await Deno.readTextFile(cacheFile);
      router = await start(["--cache-ttl", "0"]);
      assert.match(
        router.stderr(),
        /--cache-ttl 0 turns caching off: .*cache is neither read nor saved/,
      );
      assert.equal(await router.stop(), 0);
      router = null;
      assert.equal(await Deno.readTextFile(cacheFile), saved);
    });

    await t.step("a cache file others could write is refused with the fix, not fatal", async () => {
      await Deno.chmod(cacheFile, 0o660);
      router = await start();
      assert.match(
        router.stderr(),
        /cache: writable by group or others \(mode 0660\): refused, another user could have written it; fix: chmod 600 .*cache, or remove it; the cache file is ignored and the cache starts empty/,
      );
      assert.match((await ask(router, ["c@contoso.test"]))[0] ?? "", /^400 /);
      assert.equal(await router.stop(), 0);
      router = null;
      assert.equal((await Deno.stat(cacheFile)).mode! & 0o777, 0o600, "replaced at stop");
    });

    await t.step(
      "a damaged cache file is logged with its line and ignored, not fatal",
      async () => {
        await Deno.writeTextFile(cacheFile, "postfix-mx-pattern-router cache 1\n{oops\nend 1\n");
        router = await start();
        assert.match(router.stderr(), /cache, line 2: not valid JSON; the cache file is ignored/);
        assert.match((await ask(router, ["d@contoso.test"]))[0] ?? "", /^400 /);
      },
    );
  } finally {
    await (router as RouterProcess | null)?.stop();
    await dns.close();
    await Deno.remove(tmpDir, { recursive: true });
    await Deno.remove(privateDir, { recursive: true });
  }
});
