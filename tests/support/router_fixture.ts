/**
 * A router process on a fake DNS server with one zone that has every row of the DNS outcome
 * table, for the integration tests.
 *
 * @module
 */

import { type FakeDns, type FakeDnsBehaviour, startFakeDns } from "./fake_dns.ts";
import { type RouterProcess, startRouter } from "./router_process.ts";
import { isCi } from "./e2e_env.ts";
import { findBinary } from "./e2e_util.ts";
import { writePostmapConfig } from "./postfix.ts";

/** Rules used by the integration tests. */
export const RULES = `# integration rules
suffix:mail.protection.outlook.com relay:[o365.example]:587
suffix:google.com smtp:[g1.example]:25, [g2.example]:25
suffix:implicit.test relay:[implicit.example]:25
`;

/** The relay results of RULES. */
export const O365 = "relay:[o365.example]:587";
/** The Google result, with a space (tcp_table must encode it). */
export const GOOGLE = "smtp:[g1.example]:25, [g2.example]:25";

const mx = (...hosts: [number, string][]): FakeDnsBehaviour => ({
  kind: "mx",
  records: hosts.map(([preference, exchange]) => ({ preference, exchange })),
  ttl: 300,
});

/** Every DNS outcome, by test domain. */
export const ZONE: Record<string, FakeDnsBehaviour> = {
  // Preference order: the primary (5) is Microsoft, the backup (10) is not.
  "contoso.test": mx([10, "backup.other.test"], [5, "Contoso-Test.Mail.Protection.Outlook.com."]),
  "gmail.test": mx([1, "aspmx.l.google.com"], [5, "alt1.aspmx.l.google.com"]),
  "other.test": mx([10, "mx.other.test"]),
  "lookalike.test": mx([10, "protection.outlook.com.attacker.test"]),
  "nullmx.test": { kind: "nullmx" },
  "mail.implicit.test": { kind: "nodata", soa: { ttl: 300, minimum: 60 } },
  "plain.test": { kind: "nodata", soa: { ttl: 300, minimum: 60 } },
  "gone.test": { kind: "nxdomain", soa: { ttl: 300, minimum: 60 } },
  "servfail.test": { kind: "servfail" },
  "refused.test": { kind: "refused" },
  "silent.test": { kind: "silence" },
  "truncated.test": { kind: "truncate", then: mx([10, "t.mail.protection.outlook.com"]) },
  "wrongid.test": { kind: "wrongId", then: mx([10, "w.mail.protection.outlook.com"]) },
  "wrongquestion.test": { kind: "wrongQuestion", then: mx([10, "q.mail.protection.outlook.com"]) },
  "garbage.test": { kind: "garbage" },
  "xn--mller-kva.test": mx([10, "m.mail.protection.outlook.com"]),
  "slow.test": { kind: "delay", ms: 150, then: mx([10, "s.mail.protection.outlook.com"]) },
};

/** A running router with its fake DNS and temporary directory. */
export interface RouterFixture extends AsyncDisposable {
  router: RouterProcess;
  dns: FakeDns;
  tmpDir: string;
  configPath: string;
}

/** Starts fake DNS and the router process (compile-task permissions) with RULES. */
export async function startRouterFixture(
  options: { args?: string[] | ((tmpDir: string) => string[]); rules?: string } = {},
): Promise<RouterFixture> {
  const tmpDir = await Deno.makeTempDir({ prefix: "mxrouter-it-" });
  const configPath = `${tmpDir}/rules.conf`;
  await Deno.writeTextFile(configPath, options.rules ?? RULES);
  const dns = await startFakeDns({ zone: ZONE });
  let router: RouterProcess;
  try {
    router = await startRouter({
      configPath,
      tmpDir,
      dnsServers: [`127.0.0.1:${dns.port}`],
      dnsTimeoutSeconds: 0.6,
      args: typeof options.args === "function" ? options.args(tmpDir) : options.args,
    });
  } catch (error) {
    // A router that refused to start (some tests expect it) leaves nothing behind either.
    await dns.close();
    await Deno.remove(tmpDir, { recursive: true }).catch(() => {});
    throw error;
  }
  return {
    router,
    dns,
    tmpDir,
    configPath,
    async [Symbol.asyncDispose]() {
      await router.stop();
      await dns.close();
      await Deno.remove(tmpDir, { recursive: true }).catch(() => {});
    },
  };
}

/**
 * Declares a test that needs postmap: skipped with a notice when Postfix is missing, failed with
 * CI=true.
 */
export function postmapTest(name: string, fn: (configDir: string) => Promise<void>): void {
  if (findBinary("postmap") === null) {
    if (isCi()) {
      Deno.test(name, () => {
        throw new Error("CI=true and postmap is missing: apt-get install postfix");
      });
    } else {
      Deno.test({ name: `${name} (skipped: apt-get install postfix)`, ignore: true, fn() {} });
    }
    return;
  }
  Deno.test(name, async () => {
    const dir = await Deno.makeTempDir({ prefix: "mxrouter-postmap-" });
    try {
      await fn(await writePostmapConfig(dir));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
