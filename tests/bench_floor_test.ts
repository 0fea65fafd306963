/**
 * The bench's yardsticks and load generators: the Deno, lookup and C floors answer as the
 * workload expects, and the C and Deno load generators count the same replies; the C programs
 * build with the system's compiler, and a missing compiler is named.
 */

import assert from "node:assert/strict";
import {
  buildCTools,
  type CTools,
  type FloorHandle,
  runLoadgen,
  startCFloor,
  startDenoFloor,
} from "../bench/processes.ts";
import type { LoadResult } from "../bench/loadgen.ts";
import { findBinary, freePort } from "./support/e2e_util.ts";
import { LineClient } from "./support/tcp_client.ts";

const NO_CC = findBinary("cc") === null;
const FOUND = "200 relay:[office365-relay.example.com]:587";
const NOT_FOUND = "500 NO%20RESULT";

/** Starts a floor, connects, runs `body`, stops it. */
async function withFloor(
  start: () => Promise<FloorHandle>,
  body: (client: LineClient, floor: FloorHandle) => Promise<void>,
): Promise<void> {
  const floor = await start();
  const client = await LineClient.connect(floor.port);
  try {
    await body(client, floor);
  } finally {
    client.close();
    await floor.stop();
  }
}

/** A temporary directory for `body`, removed after. */
async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mxrouter-bench-test-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Builds the C programs into `dir`; fails the test with the compiler's reason if they do not build. */
async function buildInto(dir: string): Promise<CTools> {
  const built = await buildCTools({ dir });
  assert.notEqual(built.tools, null, built.why);
  return built.tools!;
}

Deno.test("lookup floor: each domain gets its expected reply, case-insensitively, in request order", async () => {
  await withTempDir(async (dir) => {
    const expected = `${dir}/expected.tsv`;
    await Deno.writeTextFile(
      expected,
      "a@found.example\t200\nb@missing.example\t500\nc@Other.Example\t200\nd@found.example\t200\n",
    );
    await withFloor(() => startDenoFloor({ lookupPath: expected }), async (client) => {
      await client.send("get x@FOUND.example\n");
      assert.equal(await client.line(), FOUND);
      // Pipelined: three requests in one write, answered in order in one reply.
      await client.send("get y@missing.example\nget z@found.example\nget w@unknown.example\n");
      assert.equal(await client.line(), NOT_FOUND);
      assert.equal(await client.line(), FOUND);
      assert.equal(await client.line(), NOT_FOUND);
      // Another domain of the table in another case; a name that only ends like a known one.
      await client.send("get k@other.EXAMPLE\nget z@xfound.example\n");
      assert.equal(await client.line(), FOUND);
      assert.equal(await client.line(), NOT_FOUND);
    });
  });
});

Deno.test("Deno floor: every request line gets 500, pipelined ones too", async () => {
  await withFloor(() => startDenoFloor(), async (client) => {
    await client.send("get a@found.example\nget b@x.example\n");
    assert.equal(await client.line(), NOT_FOUND);
    assert.equal(await client.line(), NOT_FOUND);
  });
});

Deno.test({
  name: "C floor: every request line gets 500, pipelined ones and one split over two writes too",
  ignore: NO_CC,
  fn: async () => {
    await withTempDir(async (dir) => {
      const tools = await buildInto(dir);
      await withFloor(() => startCFloor(tools.floor), async (client) => {
        await client.send("get a@found.example\nget b@x.example\n");
        assert.equal(await client.line(), NOT_FOUND);
        assert.equal(await client.line(), NOT_FOUND);
        await client.send("get c@spl");
        await client.send("it.example\n");
        assert.equal(await client.line(), NOT_FOUND);
      });
    });
  },
});

Deno.test({
  name:
    "C and Deno load generators: a pass sends each key once, a timed run cycles, replies counted",
  ignore: NO_CC,
  fn: async () => {
    await withTempDir(async (dir) => {
      const tools = await buildInto(dir);
      const expected = `${dir}/expected.tsv`;
      const keyFile = `${dir}/keys.txt`;
      const keys = ["a@found.example", "b@missing.example", "c@found.example"];
      await Deno.writeTextFile(expected, `${keys[0]}\t200\n${keys[1]}\t500\n${keys[2]}\t200\n`);
      // An empty line is no key.
      await Deno.writeTextFile(keyFile, `${keys[0]}\n\n${keys[1]}\n${keys[2]}\n`);
      const floor = await startDenoFloor({ lookupPath: expected });
      try {
        const codes = (r: LoadResult) => [r.codes[200], r.codes[400], r.codes[500], r.codes.other];
        for (
          const tool of [{ kind: "c", binary: tools.loadgen } as const, { kind: "deno" } as const]
        ) {
          const pass = await runLoadgen(tool, { port: floor.port, conns: 2, keyFile, seconds: 0 });
          assert.deepEqual(
            [pass.conns, pass.lookups, pass.errors, ...codes(pass)],
            [2, 3, 0, 2, 0, 1, 0],
            `${tool.kind}: one pass`,
          );
          const timed = await runLoadgen(tool, {
            port: floor.port,
            conns: 1,
            keyFile,
            seconds: 0.3,
          });
          // It runs its time, and cycles past the end of the keys.
          assert.ok(timed.secs >= 0.3, `${tool.kind}: ${timed.secs} s`);
          assert.ok(timed.lookups > keys.length, `${tool.kind}: ${timed.lookups} lookups`);
          assert.equal(timed.errors, 0);
          // One connection cycles through the keys in order: two 200s in every three replies.
          assert.ok(Math.abs(timed.codes[200] - 2 * timed.codes[500]) <= 2, JSON.stringify(timed));
          assert.ok(timed.p50Us > 0 && timed.p50Us <= timed.p99Us && timed.p99Us <= timed.maxUs);
        }
      } finally {
        await floor.stop();
      }
      // Nothing listening: every connection is an error, nothing is counted.
      const closed = await freePort();
      const refused = await runLoadgen({ kind: "c", binary: tools.loadgen }, {
        port: closed,
        conns: 2,
        keyFile,
        seconds: 0,
      });
      assert.deepEqual([refused.lookups, refused.errors], [0, 2]);
    });
  },
});

Deno.test("buildCTools: a missing C compiler is named, and nothing is built", async () => {
  await withTempDir(async (dir) => {
    const built = await buildCTools({ compiler: "mxrouter-no-such-cc", dir });
    assert.equal(built.tools, null);
    assert.equal(built.why, "no C compiler ('mxrouter-no-such-cc' not found)");
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  });
});

Deno.test({
  name: "buildCTools: builds both programs once, and again when a source is newer",
  ignore: NO_CC,
  fn: async () => {
    await withTempDir(async (dir) => {
      const tools = await buildInto(dir);
      const builtAt = (await Deno.stat(tools.floor)).mtime?.getTime();
      // Up to date: a missing compiler is not even asked.
      const again = await buildCTools({ compiler: "mxrouter-no-such-cc", dir });
      assert.deepEqual(again.tools, tools);
      assert.equal((await Deno.stat(tools.floor)).mtime?.getTime(), builtAt);
      // Older than its source: rebuilt, so the missing compiler is named.
      await Deno.utime(tools.loadgen, 0, 0);
      const stale = await buildCTools({ compiler: "mxrouter-no-such-cc", dir });
      assert.equal(stale.tools, null);
      assert.match(stale.why, /no C compiler/);
    });
  },
});
