/**
 * Reading what the router is configured by: the rules file and the DNS servers. Shared by the
 * server, reload, and the `check` and `query` subcommands, so all decide from the same input.
 *
 * @module
 */

import { describeFileError } from "../common/errors.ts";
import { err, ok, type Result } from "../common/result.ts";
import { formatConfigError, parseConfig, type ParseOptions } from "../routing/rules_file.ts";
import { nameserversFromResolvConf, parseDnsServer } from "../dns/servers.ts";
import type { DnsServer } from "../dns/types.ts";
import type { RuleSet } from "../routing/rules.ts";

/** What to do about a file outside the paths the binary may read. */
const OUTSIDE_RULES = "put the file under /etc/postfix, or rebuild with its directory in the " +
  "compile task's --allow-read";

/** Where DNS servers come from when no --dns-server is given. */
export const RESOLV_CONF = "/etc/resolv.conf";

/** A loaded rules file with its warnings, each a `FILE, line N: warning: ...` message. */
export interface LoadedRules {
  ruleSet: RuleSet;
  warnings: string[];
}

/**
 * Reads and parses a rules file; every problem comes back as a `FILE, line N: ...` message.
 *
 * @example
 * ```ts
 * const loaded = await loadRuleSet("/etc/postfix/postfix-mx-pattern-router.conf");
 * if (loaded.ok) console.log(loaded.value.ruleSet.rules.length);
 * else console.error(loaded.error.join("\n"));
 * ```
 */
export async function loadRuleSet(
  path: string,
  options: ParseOptions = {},
): Promise<Result<LoadedRules, string[]>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    return err([`${path}: cannot read the rules file: ${describeFileError(error, OUTSIDE_RULES)}`]);
  }
  const parsed = parseConfig(text, path, options);
  if (!parsed.ok) return err(parsed.error.map(formatConfigError));
  const { ruleSet, warnings } = parsed.value;
  return ok({ ruleSet, warnings: warnings.map(formatConfigError) });
}

/**
 * The DNS servers to use: the --dns-server values, or else the nameserver lines of
 * /etc/resolv.conf; or every message that explains why there are none.
 *
 * @example
 * ```ts
 * const loaded = await loadDnsServers(["127.0.0.1:5353"]);
 * if (loaded.ok) console.log(loaded.value); // [{ host: "127.0.0.1", port: 5353 }]
 * ```
 */
export async function loadDnsServers(
  flags: readonly string[],
): Promise<Result<DnsServer[], string[]>> {
  if (flags.length > 0) {
    const servers: DnsServer[] = [];
    const errors: string[] = [];
    for (const flag of flags) {
      const parsed = parseDnsServer(flag);
      if (!parsed.ok) errors.push(`option '--dns-server': ${parsed.error}`);
      else servers.push(parsed.value);
    }
    return errors.length > 0 ? err(errors) : ok(servers);
  }
  let text: string;
  try {
    text = await Deno.readTextFile(RESOLV_CONF);
  } catch (error) {
    return err([
      `${RESOLV_CONF}: cannot read: ${
        describeFileError(error, OUTSIDE_RULES)
      }; use --dns-server ADDR`,
    ]);
  }
  const servers = nameserversFromResolvConf(text);
  if (servers.length === 0) {
    return err([`${RESOLV_CONF}: no nameserver lines; add one or use --dns-server ADDR`]);
  }
  return ok(servers);
}
