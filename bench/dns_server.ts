/**
 * The benchmark's DNS server as a process: the fake DNS server of tests/support with a zone file,
 * plus commands on standard input so the benchmark can break and mend it without a restart delay.
 *
 * ```sh
 * deno run --allow-net --allow-read bench/dns_server.ts --zone-file Z.json --port N
 * ```
 *
 * Prints `port=N` when it serves. Commands, one per line, each answered by one line:
 * - `down`: closes both sockets (queries time out: a dead server), `ok down`
 * - `servfail`: serves SERVFAIL for every name, `ok servfail`
 * - `up`: serves the zone again on the same port, `ok up`
 * - `count`: `count=N`, the queries received since start (all modes)
 *
 * @module
 */

import { type FakeDns, type FakeDnsBehaviour, startFakeDns } from "../tests/support/fake_dns.ts";

interface ZoneConfig {
  zone?: Record<string, FakeDnsBehaviour>;
  fallback?: FakeDnsBehaviour;
}

async function main(): Promise<void> {
  const args = Deno.args;
  const value = (flag: string) => {
    const index = args.indexOf(flag);
    return index >= 0 ? args[index + 1] : undefined;
  };
  const zonePath = value("--zone-file");
  if (zonePath === undefined) throw new Error("usage: dns_server.ts --zone-file Z.json [--port N]");
  const config = JSON.parse(await Deno.readTextFile(zonePath)) as ZoneConfig;
  const zone = new Map(Object.entries(config.zone ?? {}));
  const portText = value("--port");
  let counted = 0;
  let server: FakeDns | null = await startFakeDns({
    zone,
    fallback: config.fallback,
    port: portText === undefined ? undefined : Number(portText),
  });
  const port = server.port;
  const say = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
  const close = async () => {
    if (server === null) return;
    counted += server.queryCount;
    await server.close();
    server = null;
  };
  say(`port=${port}`);

  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of Deno.stdin.readable) {
    pending += decoder.decode(chunk, { stream: true });
    let newline;
    while ((newline = pending.indexOf("\n")) >= 0) {
      const command = pending.slice(0, newline).trim();
      pending = pending.slice(newline + 1);
      switch (command) {
        case "down":
          await close();
          say("ok down");
          break;
        case "servfail":
          await close();
          server = await startFakeDns({ zone: {}, fallback: { kind: "servfail" }, port });
          say("ok servfail");
          break;
        case "up":
          await close();
          server = await startFakeDns({ zone, fallback: config.fallback, port });
          say("ok up");
          break;
        case "count":
          say(`count=${counted + (server?.queryCount ?? 0)}`);
          break;
        default:
          say(`error unknown command "${command}"`);
      }
    }
  }
  await close();
}

if (import.meta.main) {
  Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
  await main();
  Deno.exit(0);
}
