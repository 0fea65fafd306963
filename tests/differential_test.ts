/**
 * The differential test of issue 16: every key of tests/differential/corpus.ts is asked of the
 * real router process over raw tcp_table connections, with the rules file of its config and the
 * scripted zone of tests/differential/zone.ts on the fake DNS server, and its answer compared
 * with the original Python router's. Every answer must be the original's, or the one the corpus
 * lists with the id of a difference the README describes. Any other answer fails the test with a
 * table of the rows concerned.
 */

import assert from "node:assert/strict";
import { domainToASCII } from "node:url";
import { CORPUS, type CorpusConfig, DIFFERENCES, type Row } from "./differential/corpus.ts";
import { ZONE } from "./differential/zone.ts";
import { type FakeDns, startFakeDns } from "./support/fake_dns.ts";
import { PROJECT_ROOT, startRouter } from "./support/router_process.ts";
import { LineClient } from "./support/tcp_client.ts";

/** How long a lookup may take: the router's --dns-timeout, with room for a busy machine. */
const DNS_TIMEOUT_SECONDS = 1;
const REPLY_TIMEOUT_MS = 10_000;
/** A key every router answers at once with 500, sent after each key to see the connection live. */
const PROBE = "*";

const utf8 = new TextEncoder();

/** Encodes a key as Postfix sends it: `%`, whitespace, controls and non-ASCII bytes as `%XX`. */
function encodeKey(key: string): string {
  let out = "";
  for (const byte of utf8.encode(key)) {
    out += byte <= 0x20 || byte >= 0x7f || byte === 0x25
      ? `%${byte.toString(16).toUpperCase().padStart(2, "0")}`
      : String.fromCharCode(byte);
  }
  return out;
}

/** Decodes `%XX` (any case) of a reply text to UTF-8 text. */
function decodeReply(text: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "%" && /^[0-9a-f]{2}$/i.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(...utf8.encode(text[i]));
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** A reply line in the corpus' notation: `200 RESULT` decoded, else the code alone. */
function answerOf(line: string): string {
  const match = /^(\d{3}) ?(.*)$/.exec(line);
  if (match === null) return `unreadable reply ${JSON.stringify(line)}`;
  return match[1] === "200" ? `200 ${decodeReply(match[2])}` : match[1];
}

/**
 * Asks one key on a fresh connection, then the probe key, then half-closes: the reply lines that
 * follow the key's own tell whether the connection stayed open (one: the probe's) or was closed
 * after the key (none), or whether the key got more than one reply (more).
 */
async function ask(port: number, key: string): Promise<string> {
  const client = await LineClient.connect(port);
  try {
    await client.send(`get ${encodeKey(key)}\n`);
    const first = await client.line(REPLY_TIMEOUT_MS);
    if (first === null) return "closed without a reply";
    const rest: string[] = [];
    try {
      await client.send(`get ${PROBE}\n`);
      await client.conn.closeWrite();
      for (let line; (line = await client.line(REPLY_TIMEOUT_MS)) !== null;) rest.push(line);
    } catch (error) {
      // A reset after the server closed: no more replies.
      if (
        !(error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BrokenPipe)
      ) {
        throw error;
      }
    }
    const answer = answerOf(first);
    if (rest.length === 0) return `${answer} +close`;
    return rest.length > 1 ? `${answer} +extra` : answer;
  } finally {
    client.close();
  }
}

/** One row's outcome. */
interface Observed {
  config: string;
  row: Row;
  /** What ours answered (or why it could not). */
  actual: string;
  /** Why the router refused the rules file, when it did. */
  startError?: string;
  /** DNS queries the fake server got for the key's domain (rows marked noDns). */
  dnsQueries: number;
}

/** The key's domain as DNS would be asked for it (A-label form). */
function domainOf(key: string): string {
  return domainToASCII(key.slice(key.lastIndexOf("@") + 1).replace(/\.$/, ""));
}

/** Starts a router with one config's rules, asks every key of it, stops the router. */
async function runConfig(
  name: string,
  config: CorpusConfig,
  servers: { zone: FakeDns; silent: FakeDns },
  tmpDir: string,
): Promise<Observed[]> {
  const configPath = `${tmpDir}/${name.replace(/[^a-z0-9]+/gi, "-")}.conf`;
  await Deno.writeTextFile(configPath, config.rules);
  const dns = config.dns === "silent" ? servers.silent : servers.zone;
  let router;
  try {
    router = await startRouter({
      configPath,
      tmpDir,
      dnsServers: [`127.0.0.1:${dns.port}`],
      dnsTimeoutSeconds: DNS_TIMEOUT_SECONDS,
      args: config.args,
    });
  } catch (error) {
    // The router's own words: its stderr lines that name the rules file.
    const stderr = String(error).split("\nstderr:\n")[1] ?? String(error);
    const lines = stderr.split("\n").filter((line) => line.includes(configPath));
    const why = lines.length === 0
      ? stderr.trim().split("\n")[0]
      : lines[0] + (lines.length > 1 ? ` (and ${lines.length - 1} more lines)` : "");
    return config.rows.map((row) => ({
      config: name,
      row,
      actual: "router did not start",
      startError: why.replaceAll(`${tmpDir}/`, ""),
      dnsQueries: 0,
    }));
  }
  try {
    const observed: Observed[] = [];
    for (const row of config.rows) {
      const actual = await ask(router.port, row.key);
      observed.push({ config: name, row, actual, dnsQueries: 0 });
    }
    for (const entry of observed) entry.dnsQueries = dns.queriesFor(domainOf(entry.row.key));
    return observed;
  } finally {
    await router.stop();
  }
}

/** Why an observed answer fails the test, or null when it is the expected one. */
function problem({ row, actual, dnsQueries }: Observed): string | null {
  if (row.noDns === true && dnsQueries > 0) return `${dnsQueries} DNS queries for the domain`;
  const expected = row.ours ?? row.original;
  if (actual === expected) return null;
  if (row.ours === undefined) return "unlisted difference from the original";
  if (actual === row.original) return "the listed difference is gone: remove it from the corpus";
  return "neither the original's answer nor the listed one";
}

const SHORT_KEY = 48;
const MAX_CELL = 60;

function showKey(key: string): string {
  const shown = JSON.stringify(key).slice(1, -1);
  return shown.length <= SHORT_KEY ? shown : `${shown.slice(0, 20)}...(${key.length} chars)`;
}

/** A plain-text table, columns padded to their widest cell. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join(" | ").trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("-|-"), ...rows.map(line)].join("\n");
}

/** The ids the corpus uses, in first-use order. */
function usedDifferenceIds(): string[] {
  const ids = new Set<string>();
  for (const config of Object.values(CORPUS)) {
    for (const row of config.rows) for (const id of row.diff ?? []) ids.add(id);
  }
  return [...ids];
}

Deno.test("ask() tells an open connection, a closed one and extra replies apart", async () => {
  // A scripted tcp_table server: a key names how to answer (as the original did for some keys).
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serve = async () => {
    for await (const conn of listener) {
      const reader = conn.readable.pipeThrough(new TextDecoderStream()).getReader();
      const writer = conn.writable.getWriter();
      let pending = "";
      try {
        while (true) {
          const { value, done } = await reader.read();
          if (done) break;
          pending += value;
          let newline;
          while ((newline = pending.indexOf("\n")) >= 0) {
            const key = pending.slice(4, newline);
            pending = pending.slice(newline + 1);
            if (key === "close") {
              await writer.write(utf8.encode("400 timeout\n"));
              throw new Error("closed");
            }
            if (key === "twice") await writer.write(utf8.encode("500 NO%20RESULT\n"));
            await writer.write(
              utf8.encode(key === "found" ? "200 a%20b%3A\n" : "500 NO%20RESULT\n"),
            );
          }
        }
      } catch {
        // "close": hang up after the reply.
      }
      await writer.close().catch(() => {});
    }
  };
  const serving = serve();
  try {
    const port = (listener.addr as Deno.NetAddr).port;
    assert.equal(await ask(port, "found"), "200 a b:");
    assert.equal(await ask(port, "other"), "500");
    assert.equal(await ask(port, "close"), "400 +close");
    assert.equal(await ask(port, "twice"), "500 +extra");
  } finally {
    listener.close();
    await serving.catch(() => {});
  }
});

Deno.test("the corpus: at least 150 keys, every difference with its id, every id described", () => {
  const rows = Object.values(CORPUS).flatMap((config) => config.rows);
  const keys = new Set(rows.map((row) => row.key));
  assert.ok(keys.size >= 150, `${keys.size} distinct keys`);
  for (const row of rows) {
    const listed = row.ours !== undefined;
    assert.equal(listed, (row.diff ?? []).length > 0, `${row.key}: "ours" and "diff" go together`);
    assert.notEqual(row.ours, row.original, `${row.key}: "ours" is the original's answer`);
    for (const id of row.diff ?? []) assert.ok(id in DIFFERENCES, `${row.key}: unknown id ${id}`);
  }
});

Deno.test("differential: ours answers every key as the original, or as a listed difference", async () => {
  const tmpDir = await Deno.makeTempDir({ prefix: "mxrouter-differential-" });
  const zone = await startFakeDns({ zone: ZONE });
  const silent = await startFakeDns({ fallback: { kind: "silence" } });
  try {
    const observed: Observed[] = [];
    for (const [name, config] of Object.entries(CORPUS)) {
      observed.push(...await runConfig(name, config, { zone, silent }, tmpDir));
    }
    const failures = observed.flatMap((entry) => {
      const why = problem(entry);
      return why === null ? [] : [{ ...entry, why }];
    });
    const differences = observed.filter((entry) => entry.row.diff !== undefined);
    console.log(
      `differential: ${observed.length} lookups of ${
        new Set(observed.map((o) => o.row.key)).size
      } ` +
        `keys over ${Object.keys(CORPUS).length} rules files; ` +
        `${observed.length - differences.length} answered as the original, ` +
        `${differences.length} listed differences (${usedDifferenceIds().join(", ")}); ` +
        `${failures.length} wrong`,
    );
    if (failures.length > 0) {
      const header = ["config", "key", "original", "expected", "ours", "diff", "why"];
      const rows = failures.map(({ config, row, actual, why }) =>
        [
          config,
          showKey(row.key),
          row.original,
          row.ours ?? row.original,
          actual,
          (row.diff ?? []).join(","),
          why,
        ].map((cell) => cell.length > MAX_CELL ? `${cell.slice(0, MAX_CELL - 3)}...` : cell)
      );
      const startErrors = new Map(
        failures.flatMap((f) => f.startError === undefined ? [] : [[f.config, f.startError]]),
      );
      assert.fail(
        `${failures.length} of ${observed.length} answers differ from the original without a ` +
          `listed difference:\n${table(header, rows)}` +
          [...startErrors].map(([config, error]) => `\nrules file "${config}": ${error}`).join(""),
      );
    }
  } finally {
    await zone.close();
    await silent.close();
    await Deno.remove(tmpDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("README.md's Differences from the original has a (diff: ID) marker for each id the corpus uses", async () => {
  const readme = await Deno.readTextFile(`${PROJECT_ROOT}/README.md`);
  const section = /^## Differences from the original\n([\s\S]*?)(?=^## |(?![\s\S]))/m.exec(readme);
  assert.ok(section !== null, 'README.md has no "## Differences from the original" section');
  const markers = new Set([...section[1].matchAll(/\(diff: ([a-z0-9-]+)\)/g)].map((m) => m[1]));
  const missing = usedDifferenceIds().filter((id) => !markers.has(id));
  assert.deepEqual(
    missing,
    [],
    `README.md, "Differences from the original": no "(diff: ID)" marker for:\n${
      missing.map((id) => `  ${id}: ${DIFFERENCES[id as keyof typeof DIFFERENCES]}`).join("\n")
    }`,
  );
});
