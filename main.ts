/**
 * postfix-mx-pattern-router: a Postfix tcp_table and socketmap table that routes recipients by
 * their domain's MX hosts. This file only dispatches the command line; see lib/app/.
 *
 * @module
 */

import { runCheck } from "./lib/app/check.ts";
import { HELP, parseCommandLine, PROGRAM, USAGE, VERSION } from "./lib/app/cli.ts";
import { runHealthCheck } from "./lib/app/health_check.ts";
import { runQuery } from "./lib/app/query.ts";
import { serve } from "./lib/app/serve.ts";
import { writeFatal } from "./lib/common/log.ts";
import { formatProviderCatalog } from "./lib/routing/providers.ts";

if (import.meta.main) {
  const command = parseCommandLine(Deno.args);
  switch (command.kind) {
    case "help":
      console.log(HELP);
      break;
    case "version":
      console.log(`${PROGRAM} ${VERSION}`);
      break;
    case "error":
      writeFatal([`${PROGRAM}: ${command.message}`, ...USAGE.split("\n")]);
      Deno.exit(2);
      break;
    case "serve":
      await serve(command.options);
      break;
    case "check":
      Deno.exit(await runCheck(command.options));
      break;
    case "query":
      Deno.exit(await runQuery(command.options));
      break;
    case "health":
      Deno.exit(await runHealthCheck(command.args));
      break;
    case "providers":
      console.log(formatProviderCatalog().join("\n"));
      break;
  }
}
