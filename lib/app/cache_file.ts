/**
 * The cache file (--cache-file): the cache's DNS answers read before the router listens, and
 * written on stop and every few minutes, so a restart while DNS is down still routes every domain
 * known before it. The format is {@link ../routing/cache_snapshot.ts}'s; this module does the
 * file system part: a bounded read, ownership checks, and atomic writes.
 *
 * Nothing here is fatal: a cache file that is missing, unreadable, damaged or not safe to trust is
 * logged and ignored, and the router starts with an empty cache as it would without the flag.
 *
 * @module
 */

import { describeFileError } from "../common/errors.ts";
import { log } from "../common/log.ts";
import { err, ok, type Result } from "../common/result.ts";
import type { CacheImport, SavedEntry } from "../routing/cache.ts";
import { decodeSnapshot, snapshotByteLimit, SnapshotEncoder } from "../routing/cache_snapshot.ts";

/**
 * How often the cache is saved while running. A crash loses at most the domains first seen in
 * the last five minutes; a domain that gets mail now and then was seen earlier and is in the
 * file. More often would rewrite megabytes for little gain: the file is written again only when
 * DNS was asked something since the last save.
 */
export const CACHE_SAVE_INTERVAL_MS = 5 * 60_000;

/** Entries encoded between two turns of the event loop: about 5 ms of work. */
const ENCODE_BATCH = 5000;

/** What the cache file needs from the cache ({@linkcode MxCache} has it). */
export interface PersistentCache {
  /** The usable entries, most recently used first. */
  exportEntries(): SavedEntry[];
  /** Takes entries in before serving. */
  importEntries(entries: readonly SavedEntry[]): CacheImport;
  /** `dnsQueries` tells whether anything could have changed since the last save. */
  readonly counters: { readonly dnsQueries: number };
}

/** Why a cache file is not used. */
export interface CacheFileFault {
  /** True when there is no file yet (the first start): nothing to warn about. */
  missing: boolean;
  /** What is wrong, naming the file (and the line), and the fix. */
  message: string;
}

/** Options of {@linkcode readCacheFile}. */
export interface ReadCacheFileOptions {
  /** --cache-size: the most entries taken, and (through the byte limit) the largest file read. */
  cacheSize: number;
  /** The uid the file must belong to; the process's own when not given. */
  uid?: number;
}

/**
 * Reads and decodes a cache file, refusing it unread when another user could have written it
 * (the file or its directory writable by group or others, or owned by someone else) or when it
 * is larger than {@linkcode snapshotByteLimit}. Never throws; every message names the file (and
 * the line) and, for ownership, the fix.
 *
 * @example
 * ```ts
 * const read = await readCacheFile("/var/lib/postfix-mx-pattern-router/cache", {
 *   cacheSize: 100_000,
 * });
 * if (!read.ok) console.warn(read.error.message);
 * ```
 */
export async function readCacheFile(
  path: string,
  options: ReadCacheFileOptions,
): Promise<Result<SavedEntry[], CacheFileFault>> {
  const refuse = (message: string) => err({ missing: false, message: `${path}: ${message}` });
  // Checked by path, not on the opened file: Deno checks an open file's stat() against its real
  // path, and under DynamicUser= the state directory is a symbolic link into /var/lib/private,
  // which the binary may not read. The file cannot be swapped between the check and the open:
  // only we or root may write its directory (checked here too).
  let stat: Deno.FileInfo;
  let directory: Deno.FileInfo;
  try {
    stat = await Deno.stat(path);
    directory = await Deno.stat(dirname(path));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return err({ missing: true, message: `${path}: no cache file yet` });
    }
    return refuse(`cannot read: ${describeFileError(error, OUTSIDE)}`);
  }
  if (!stat.isFile) return refuse("not a regular file; remove it");
  // Null where there are no uids (Windows): then only the mode is checked.
  let uid: number | null;
  try {
    uid = options.uid ?? Deno.uid();
  } catch {
    return refuse("cannot check its owner: this binary lacks --allow-sys=uid");
  }
  const unsafe = unsafeOwnership(path, stat, uid) ??
    unsafeDirectory(dirname(path), directory, uid);
  if (unsafe !== null) return refuse(unsafe);
  const limit = snapshotByteLimit(options.cacheSize);
  if (stat.size > limit) return refuse(tooLarge(stat.size, limit, options.cacheSize));
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    return refuse(`cannot open: ${describeFileError(error, OUTSIDE)}`);
  }
  try {
    // Bounded even if the file grows after the stat: one byte more than allowed is enough to know.
    const buffer = new Uint8Array(Math.min(stat.size, limit) + 1);
    let length = 0;
    while (length < buffer.length) {
      const read = await file.read(buffer.subarray(length));
      if (read === null) break;
      length += read;
    }
    if (length > limit) return refuse(tooLarge(length, limit, options.cacheSize));
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(buffer.subarray(0, length));
    } catch {
      return refuse("not a cache snapshot: not UTF-8 text");
    }
    const decoded = decodeSnapshot(text, { maxEntries: options.cacheSize });
    if (!decoded.ok) {
      const { line, message } = decoded.error;
      const where = line === null ? path : `${path}, line ${line}`;
      return err({ missing: false, message: `${where}: ${message}` });
    }
    return ok(decoded.value);
  } catch (error) {
    return refuse(`cannot read: ${describeFileError(error, OUTSIDE)}`);
  } finally {
    file.close();
  }
}

/**
 * Writes `text` to `path` atomically: into a new file of mode 0600 in the same directory, synced
 * to disk, then renamed over `path` (and the directory synced), so a crash or a full disk leaves
 * either the old file or the new one, never a mix. Throws when it cannot; the old file is then
 * untouched and the temporary one removed.
 *
 * @example
 * ```ts
 * import { encodeSnapshot, snapshotByteLimit } from "../routing/cache_snapshot.ts";
 *
 * const bounds = { maxEntries: 100_000, maxBytes: snapshotByteLimit(100_000) };
 * const { text } = encodeSnapshot([], bounds);
 * await writeCacheFile("/var/lib/postfix-mx-pattern-router/cache", text);
 * ```
 */
export async function writeCacheFile(path: string, text: string): Promise<void> {
  const temporary = `${path}.${Deno.pid}.tmp`;
  // A leftover of a process that died mid-write with our pid.
  await Deno.remove(temporary).catch(() => {});
  const file = await Deno.open(temporary, { write: true, createNew: true, mode: 0o600 });
  try {
    try {
      const bytes = new TextEncoder().encode(text);
      let written = 0;
      while (written < bytes.length) written += await file.write(bytes.subarray(written));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temporary, path);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
  // The rename is durable once the directory is: best effort, the file is complete either way.
  try {
    const directory = await Deno.open(dirname(path), { read: true });
    try {
      await directory.sync();
    } finally {
      directory.close();
    }
  } catch {
    // Some file systems cannot sync a directory; the rename still happened.
  }
}

/** A cache file in use: saved on {@linkcode CacheFile.close} and every few minutes meanwhile. */
export interface CacheFile {
  /** Writes the cache now (after any save under way). Never throws: failures are logged. */
  save(): Promise<void>;
  /** Stops the periodic saves and saves one last time. */
  close(): Promise<void>;
}

/** Options of {@linkcode openCacheFile}. */
export interface OpenCacheFileOptions {
  /** --cache-file. */
  path: string;
  /** The cache to fill and save. */
  cache: PersistentCache;
  /** --cache-size. */
  cacheSize: number;
  /** Between periodic saves; default {@linkcode CACHE_SAVE_INTERVAL_MS}. */
  intervalMs?: number;
}

/**
 * Loads the cache file into the cache (call it before listening), logs what it found, and saves
 * the cache every few minutes until closed.
 *
 * @example
 * ```ts
 * declare const cache: PersistentCache;
 * const cacheFile = await openCacheFile({
 *   path: "/var/lib/postfix-mx-pattern-router/cache",
 *   cache,
 *   cacheSize: 100_000,
 * });
 * // ... serve ...
 * await cacheFile.close();
 * ```
 */
export async function openCacheFile(options: OpenCacheFileOptions): Promise<CacheFile> {
  const { path, cache, cacheSize } = options;
  const started = performance.now();
  const read = await readCacheFile(path, { cacheSize });
  if (read.ok) {
    const counts = cache.importEntries(read.value);
    const ms = Math.round(performance.now() - started);
    log
      .info`${path}: loaded ${counts.fresh} fresh and ${counts.stale} stale cached answers in ${ms} ms (${counts.dropped} older than --stale-ttl dropped)`;
  } else if (read.error.missing) {
    log.info`${read.error.message}; it is written on stop and every ${
      CACHE_SAVE_INTERVAL_MS / 60_000
    } minutes`;
  } else {
    log.warning`${read.error.message}; the cache file is ignored and the cache starts empty`;
  }

  let queriesAtSave = -1;
  let saving: Promise<void> = Promise.resolve();
  const saveNow = async (): Promise<void> => {
    queriesAtSave = cache.counters.dnsQueries;
    const entries = cache.exportEntries();
    const encoder = new SnapshotEncoder({
      maxEntries: cacheSize,
      maxBytes: snapshotByteLimit(cacheSize),
    });
    for (let i = 0; i < entries.length; i++) {
      encoder.add(entries[i]);
      // Lookups go on meanwhile: none waits for more than one batch.
      if (i % ENCODE_BATCH === ENCODE_BATCH - 1) await new Promise((go) => setTimeout(go, 0));
    }
    const encoded = encoder.finish();
    try {
      await writeCacheFile(path, encoded.text);
      log.debug`${path}: saved ${encoded.written} cached answers (${encoded.omitted} left out)`;
    } catch (error) {
      log.warning`${path}: cannot save the cache: ${describeFileError(error, OUTSIDE)}`;
    }
  };
  const save = () => saving = saving.then(saveNow);
  const timer = setInterval(() => {
    if (cache.counters.dnsQueries !== queriesAtSave) save();
  }, options.intervalMs ?? CACHE_SAVE_INTERVAL_MS);
  Deno.unrefTimer(timer);
  return {
    save,
    async close() {
      clearInterval(timer);
      await save();
    },
  };
}

function unsafeOwnership(path: string, stat: Deno.FileInfo, uid: number | null): string | null {
  if (uid !== null && stat.uid !== null && stat.uid !== uid) {
    return `owned by uid ${stat.uid}, not by this router's uid ${uid}: refused, another user ` +
      `could have written it; fix: chown ${uid} ${path}, or remove it`;
  }
  const mode = (stat.mode ?? 0) & 0o777;
  if ((mode & 0o022) !== 0) {
    return `writable by group or others (mode ${octal(mode)}): refused, another user could have ` +
      `written it; fix: chmod 600 ${path}, or remove it`;
  }
  return null;
}

function unsafeDirectory(
  directory: string,
  stat: Deno.FileInfo,
  uid: number | null,
): string | null {
  if (uid !== null && stat.uid !== null && stat.uid !== uid && stat.uid !== 0) {
    return `its directory ${directory} is owned by uid ${stat.uid}, neither this router's uid ` +
      `${uid} nor root: refused, another user could have replaced the file; fix: chown ${uid} ` +
      directory;
  }
  const mode = stat.mode ?? 0;
  // With the sticky bit (as on /tmp) others may create files there but not replace ours.
  if ((mode & 0o022) !== 0 && (mode & 0o1000) === 0) {
    return `its directory ${directory} is writable by group or others (mode ` +
      `${octal(mode & 0o777)}): refused, another user could have replaced the file; fix: ` +
      `chmod go-w ${directory}`;
  }
  return null;
}

function tooLarge(size: number, limit: number, cacheSize: number): string {
  return `${size} bytes, more than the ${limit} bytes allowed for --cache-size ${cacheSize}: ` +
    "refused unread; remove it, or raise --cache-size";
}

function octal(mode: number): string {
  return `0${mode.toString(8).padStart(3, "0")}`;
}

/** What to do about a cache file outside the paths the binary may use. */
const OUTSIDE = "put it under /var/lib/postfix-mx-pattern-router";

function dirname(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
}
