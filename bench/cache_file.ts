/**
 * What --cache-file costs: the start-up delay of loading a full cache (read, decode, import into
 * MxCache, as openCacheFile does before the router listens), one save (export, encode in
 * batches, the atomic write) and the longest the event loop is held meanwhile, and the file's
 * size. The cache holds --cache-size 100000 entries by default; pass another count as the first
 * argument.
 *
 * Run: deno run --allow-all bench/cache_file.ts [ENTRIES]
 *
 * @module
 */

import { openCacheFile, readCacheFile, writeCacheFile } from "../lib/app/cache_file.ts";
import { DEFAULT_CACHE_OPTIONS, MxCache, type SavedEntry } from "../lib/routing/cache.ts";
import { encodeSnapshot, snapshotByteLimit } from "../lib/routing/cache_snapshot.ts";
import { FakeResolver } from "../tests/support/fake_resolver.ts";

const count = Number(Deno.args[0] ?? 100_000);
const ROUNDS = 5;

/** Entries shaped like a mail host's: mostly MX sets at big providers, some negative answers. */
function entries(now: number): SavedEntry[] {
  const list: SavedEntry[] = [];
  for (let i = 0; i < count; i++) {
    const domain = `customer-${i}.example-${i % 97}.com`;
    const freshUntil = now + ((i * 7919) % 3_600_000);
    switch (i % 10) {
      case 0:
        list.push({ domain, freshUntil, outcome: { kind: "nxdomain", negativeTtl: 900 } });
        break;
      case 1:
        list.push({ domain, freshUntil, outcome: { kind: "nodata", negativeTtl: 300 } });
        break;
      case 2:
      case 3:
      case 4:
        list.push({
          domain,
          freshUntil,
          outcome: {
            kind: "mx",
            hosts: [
              "aspmx.l.google.com",
              "alt1.aspmx.l.google.com",
              "alt2.aspmx.l.google.com",
              "alt3.aspmx.l.google.com",
              "alt4.aspmx.l.google.com",
            ],
            ttl: 300,
          },
        });
        break;
      default:
        list.push({
          domain,
          freshUntil,
          outcome: {
            kind: "mx",
            hosts: [`customer-${i}-example-${i % 97}-com.mail.protection.outlook.com`],
            ttl: 3600,
          },
        });
    }
  }
  return list;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const dir = await Deno.makeTempDir({ prefix: "mxrouter-bench-cache-" });
const path = `${dir}/cache`;
const options = { ...DEFAULT_CACHE_OPTIONS, cacheSize: count };
try {
  const now = Date.now();
  const source = new MxCache({ resolver: new FakeResolver(), options });
  source.importEntries(entries(now));
  const oneGo: number[] = [];
  const save: number[] = [];
  const longestPause: number[] = [];
  const load: number[] = [];
  const readDecode: number[] = [];
  let bytes = 0;
  for (let round = 0; round < ROUNDS; round++) {
    let started = performance.now();
    const { text, written } = encodeSnapshot(source.exportEntries(), {
      maxEntries: count,
      maxBytes: snapshotByteLimit(count),
    });
    oneGo.push(performance.now() - started);
    if (written !== count) throw new Error(`wrote ${written} of ${count} entries`);
    await writeCacheFile(path, text);
    bytes = (await Deno.stat(path)).size;

    started = performance.now();
    const read = await readCacheFile(path, { cacheSize: count });
    readDecode.push(performance.now() - started);
    if (!read.ok) throw new Error(read.error.message);

    const cache = new MxCache({ resolver: new FakeResolver(), options });
    started = performance.now();
    const file = await openCacheFile({ path, cache, cacheSize: count });
    load.push(performance.now() - started);
    if (cache.size !== count) throw new Error(`loaded ${cache.size} of ${count} entries`);

    // A save as the router does it, with a 1 ms ticker standing in for lookups.
    let last = performance.now();
    let longest = 0;
    const ticker = setInterval(() => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
    }, 1);
    started = performance.now();
    await file.close();
    save.push(performance.now() - started);
    clearInterval(ticker);
    longestPause.push(Math.max(longest, performance.now() - last));
  }
  const ms = (values: number[]) => `${median(values).toFixed(0)} ms`;
  console.log(`cache file with ${count} entries: ${(bytes / 1e6).toFixed(1)} MB`);
  console.log(
    `start-up delay (read, decode, import): ${ms(load)} (read and decode alone ${ms(readDecode)})`,
  );
  console.log(
    `save: ${ms(save)} in all, the event loop held for at most ${
      ms(longestPause)
    } at a time (encoded in one go: ${ms(oneGo)})`,
  );
  console.log(`(medians of ${ROUNDS} rounds)`);
} finally {
  await Deno.remove(dir, { recursive: true });
}
