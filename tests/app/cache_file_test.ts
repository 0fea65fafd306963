/**
 * The cache file on disk: written atomically with mode 0600, read back whole, and every file that
 * is missing, damaged, too large or writable by someone else refused with a message naming the
 * file and what is wrong, never an exception.
 */

import assert from "node:assert/strict";
import {
  openCacheFile,
  type PersistentCache,
  readCacheFile,
  writeCacheFile,
} from "../../lib/app/cache_file.ts";
import type { CacheImport, SavedEntry } from "../../lib/routing/cache.ts";
import { encodeSnapshot, snapshotByteLimit } from "../../lib/routing/cache_snapshot.ts";

const T = 1_718_000_000_000;
const ENTRIES: SavedEntry[] = [
  {
    domain: "contoso.com",
    freshUntil: T,
    outcome: { kind: "mx", hosts: ["mx.contoso.com"], ttl: 60 },
  },
  { domain: "gone.example", freshUntil: T + 1, outcome: { kind: "nxdomain", negativeTtl: null } },
];
const SIZE = 100_000;

function snapshot(entries: SavedEntry[] = ENTRIES): string {
  return encodeSnapshot(entries, { maxEntries: SIZE, maxBytes: snapshotByteLimit(SIZE) }).text;
}

/** A temporary directory of mode 0700, removed after `fn`. */
async function inTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mxrouter-cachefile-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function assertRefused(
  path: string,
  message: RegExp,
  options: { cacheSize?: number; uid?: number } = {},
): Promise<void> {
  const read = await readCacheFile(path, { cacheSize: SIZE, ...options });
  assert.equal(read.ok, false, `${path} accepted`);
  if (read.ok) return;
  assert.equal(read.error.missing, false);
  assert.ok(read.error.message.startsWith(path), `names the file: ${read.error.message}`);
  assert.match(read.error.message, message);
}

Deno.test("cache file: written with mode 0600 and read back whole; no temporary file is left", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/cache`;
    await writeCacheFile(path, snapshot());
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.deepEqual(await readCacheFile(path, { cacheSize: SIZE }), {
      ok: true,
      value: ENTRIES,
    });
    // Written again over the old one.
    await writeCacheFile(path, snapshot(ENTRIES.slice(1)));
    assert.deepEqual(await readCacheFile(path, { cacheSize: SIZE }), {
      ok: true,
      value: ENTRIES.slice(1),
    });
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    assert.deepEqual(names, ["cache"]);
  });
});

Deno.test("cache file: a write that cannot finish leaves the old file and no temporary one", async () => {
  await inTempDir(async (dir) => {
    // A directory where the file should be: the rename fails after the data is written.
    const path = `${dir}/cache`;
    await Deno.mkdir(path);
    await Deno.writeTextFile(`${path}/keep`, "x");
    await assert.rejects(() => writeCacheFile(path, snapshot()));
    assert.equal(await Deno.readTextFile(`${path}/keep`), "x");
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    assert.deepEqual(names, ["cache"]);
    // No directory at all: nothing to leave behind, and an error, not a crash.
    await assert.rejects(() => writeCacheFile(`${dir}/none/cache`, snapshot()));
  });
});

Deno.test("cache file: a missing file is reported as missing", async () => {
  await inTempDir(async (dir) => {
    const read = await readCacheFile(`${dir}/cache`, { cacheSize: SIZE });
    assert.deepEqual(read, {
      ok: false,
      error: { missing: true, message: `${dir}/cache: no cache file yet` },
    });
  });
});

Deno.test("cache file: damaged files are refused, naming the file and the line", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/cache`;
    const text = snapshot();
    const cases: [string | Uint8Array, RegExp][] = [
      [text.slice(0, -20), /^[^,]*: truncated: no "end COUNT" line/],
      ["", /, line 1: not a cache snapshot/],
      ["GIF89a\n", /, line 1: not a cache snapshot/],
      [
        text.replace("cache 1", "cache 2"),
        /, line 1: format version "2", but this router reads version 1/,
      ],
      [text.replace('"k":"mx"', '"k":mx'), /, line 2: not valid JSON/],
      [text.replace('"t":60', '"t":-60'), /, line 2: field "t": -60 is not a TTL/],
      [text.replace('"k":"nxdomain"', '"k":"tempfail"'), /, line 3: field "k": "tempfail"/],
      [new Uint8Array([...new TextEncoder().encode(text.slice(0, 40)), 0xff, 0xfe]), /not UTF-8/],
    ];
    for (const [content, message] of cases) {
      await Deno.writeFile(
        path,
        typeof content === "string" ? new TextEncoder().encode(content) : content,
        {
          mode: 0o600,
        },
      );
      await Deno.chmod(path, 0o600);
      await assertRefused(path, message);
    }
  });
});

Deno.test("cache file: a file larger than --cache-size allows is refused unread", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/cache`;
    await writeCacheFile(path, snapshot());
    const limit = snapshotByteLimit(10);
    // Sparse: as large as it needs to be without writing the bytes.
    await Deno.truncate(path, limit + 1);
    await assertRefused(
      path,
      new RegExp(
        `${
          limit + 1
        } bytes, more than the ${limit} bytes allowed for --cache-size 10: refused unread; remove it, or raise --cache-size`,
      ),
      { cacheSize: 10 },
    );
    await Deno.truncate(path, limit);
    // At the limit it is read (and then found damaged, not too large).
    await assertRefused(path, /truncated/, { cacheSize: 10 });
  });
});

Deno.test("cache file: a file another user could have written is refused, naming the fix", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/cache`;
    await writeCacheFile(path, snapshot());
    const uid = Deno.uid()!;
    await assertRefused(
      path,
      new RegExp(
        `owned by uid ${uid}, not by this router's uid ${
          uid + 1
        }: refused, another user could have written it; fix: chown ${
          uid + 1
        } ${path}, or remove it`,
      ),
      { uid: uid + 1 },
    );
    for (const mode of [0o620, 0o602, 0o666]) {
      await Deno.chmod(path, mode);
      await assertRefused(
        path,
        new RegExp(
          `writable by group or others \\(mode 0${
            mode.toString(8)
          }\\): refused.*fix: chmod 600 ${path}`,
        ),
      );
    }
    await Deno.chmod(path, 0o644); // readable by others is fine
    assert.ok((await readCacheFile(path, { cacheSize: SIZE })).ok);

    await Deno.chmod(dir, 0o770);
    await assertRefused(
      path,
      new RegExp(
        `its directory ${dir} is writable by group or others \\(mode 0770\\).*fix: chmod go-w ${dir}`,
      ),
    );
    await Deno.chmod(dir, 0o1777); // sticky, as /tmp: others cannot replace our file
    assert.ok((await readCacheFile(path, { cacheSize: SIZE })).ok);
    await Deno.chmod(dir, 0o700);
    // A directory of another user (not root) could have its file replaced: needs root to set up.
    if (uid === 0) {
      await Deno.chown(dir, 65534, null);
      await assertRefused(
        path,
        new RegExp(
          `its directory ${dir} is owned by uid 65534, neither this router's uid 0 nor root`,
        ),
      );
      await Deno.chown(dir, 0, null);
    }
  });
});

Deno.test("cache file: a directory at the path is refused", async () => {
  await inTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/cache`);
    await assertRefused(`${dir}/cache`, /not a regular file; remove it/);
  });
});

/** A cache that records what it was given and exports what it is told to. */
class RecordingCache implements PersistentCache {
  imported: SavedEntry[][] = [];
  exports = 0;
  entries: SavedEntry[] = ENTRIES;
  counters = { dnsQueries: 0 };
  exportEntries(): SavedEntry[] {
    this.exports++;
    return this.entries;
  }
  importEntries(entries: readonly SavedEntry[]): CacheImport {
    this.imported.push([...entries]);
    return { fresh: entries.length, stale: 0, dropped: 0 };
  }
}

Deno.test("cache file: opened, it loads the file into the cache, and close saves it", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/cache`;
    await writeCacheFile(path, snapshot());
    const cache = new RecordingCache();
    const file = await openCacheFile({ path, cache, cacheSize: SIZE });
    assert.deepEqual(cache.imported, [ENTRIES]);
    cache.entries = ENTRIES.slice(0, 1);
    await file.close();
    assert.deepEqual(await readCacheFile(path, { cacheSize: SIZE }), {
      ok: true,
      value: ENTRIES.slice(0, 1),
    });
  });
});

Deno.test("cache file: a missing or damaged file loads nothing and is replaced on close", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/cache`;
    const missing = new RecordingCache();
    await (await openCacheFile({ path, cache: missing, cacheSize: SIZE })).close();
    assert.deepEqual(missing.imported, []);
    assert.deepEqual(await readCacheFile(path, { cacheSize: SIZE }), {
      ok: true,
      value: ENTRIES,
    });

    await Deno.writeTextFile(path, "garbage\n");
    const damaged = new RecordingCache();
    await (await openCacheFile({ path, cache: damaged, cacheSize: SIZE })).close();
    assert.deepEqual(damaged.imported, []);
    assert.ok((await readCacheFile(path, { cacheSize: SIZE })).ok);
  });
});

Deno.test("cache file: saved every interval, but only when DNS was asked something since", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/cache`;
    const cache = new RecordingCache();
    const file = await openCacheFile({ path, cache, cacheSize: SIZE, intervalMs: 20 });
    try {
      const waitForExports = async (count: number) => {
        for (let i = 0; i < 200 && cache.exports < count; i++) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      };
      await waitForExports(1);
      assert.equal(cache.exports, 1, "the first interval saves");
      for (let i = 0; i < 200 && !(await readCacheFile(path, { cacheSize: SIZE })).ok; i++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.ok((await readCacheFile(path, { cacheSize: SIZE })).ok, "written");
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(cache.exports, 1, "nothing asked: nothing written");
      cache.counters.dnsQueries++;
      await waitForExports(2);
      assert.equal(cache.exports, 2);
    } finally {
      await file.close();
    }
  });
});
