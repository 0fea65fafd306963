/**
 * The bench's yardsticks and report: the lookup floor answers as the workload expects, the markdown
 * the bench prints is made of well-formed tables, and it says how busy the machine was.
 */

import assert from "node:assert/strict";
import { startDenoFloor } from "../bench/processes.ts";
import { type BenchResults, formatBench } from "../bench/report.ts";
import { busyPercent } from "../bench/setup.ts";
import { PROJECT_ROOT } from "./support/router_process.ts";
import { LineClient } from "./support/tcp_client.ts";

/** Starts a Deno floor (with `lookupPath`: the lookup floor), connects, runs `body`, stops it. */
async function withFloor(
  options: { lookupPath?: string },
  body: (client: LineClient) => Promise<void>,
): Promise<void> {
  const floor = await startDenoFloor(options);
  const client = await LineClient.connect(floor.port);
  try {
    await body(client);
  } finally {
    client.close();
    await floor.stop();
  }
}

Deno.test("lookup floor: each domain gets its expected reply, case-insensitively, in request order", async () => {
  const dir = await Deno.makeTempDir();
  const expected = `${dir}/expected.tsv`;
  await Deno.writeTextFile(
    expected,
    "a@found.example\t200\nb@missing.example\t500\nc@Other.Example\t200\nd@found.example\t200\n",
  );
  try {
    await withFloor({ lookupPath: expected }, async (client) => {
      await client.send("get x@FOUND.example\n");
      assert.equal(await client.line(), "200 relay:[office365-relay.example.com]:587");
      // Pipelined: three requests in one write, answered in order in one reply.
      await client.send("get y@missing.example\nget z@found.example\nget w@unknown.example\n");
      assert.equal(await client.line(), "500 NO%20RESULT");
      assert.equal(await client.line(), "200 relay:[office365-relay.example.com]:587");
      assert.equal(await client.line(), "500 NO%20RESULT");
      // Another domain of the table in another case; a name that only ends like a known one.
      await client.send("get k@other.EXAMPLE\nget z@xfound.example\n");
      assert.equal(await client.line(), "200 relay:[office365-relay.example.com]:587");
      assert.equal(await client.line(), "500 NO%20RESULT");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("plain floor: every request line gets 500, pipelined ones too", async () => {
  await withFloor({}, async (client) => {
    await client.send("get a@found.example\nget b@x.example\n");
    assert.equal(await client.line(), "500 NO%20RESULT");
    assert.equal(await client.line(), "500 NO%20RESULT");
  });
});

Deno.test("bench report: every table row has as many cells as its header", async () => {
  const saved = JSON.parse(await Deno.readTextFile(`${PROJECT_ROOT}/bench/results.json`)) as {
    bench: BenchResults;
  };
  const cells = (line: string) => line.trim().split("|").length - 2;
  let header = 0;
  let tables = 0;
  for (const line of formatBench(saved.bench).split("\n")) {
    if (!line.startsWith("|")) {
      header = 0;
      continue;
    }
    if (header === 0) {
      header = cells(line);
      tables++;
      continue;
    }
    assert.equal(cells(line), header, `row does not fit its table's ${header} columns: ${line}`);
  }
  assert.ok(tables >= 3, `expected the hit, figure and target tables, found ${tables}`);
});

Deno.test("busyPercent: busy share of the first eight /proc/stat fields; idle and iowait are not busy", () => {
  // +50 user, +50 system, +50 idle, +50 iowait; +50 guest, which user already counts.
  const before = "cpu  100 0 100 700 100 0 0 0 50 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
  const after = "cpu  150 0 150 750 150 0 0 0 100 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
  assert.equal(busyPercent(before, after), 50);
  // steal counts as busy (another guest had the CPU).
  assert.equal(busyPercent("cpu  0 0 0 100 0 0 0 0", "cpu  0 0 0 150 0 0 0 50"), 50);
  // Unreadable or unchanged: unknown, never "quiet".
  assert.equal(busyPercent("", after), null);
  assert.equal(busyPercent(after, after), null);
});

Deno.test("bench report: a busy machine is warned about, an unknown share is said to be unknown", async () => {
  const saved = JSON.parse(await Deno.readTextFile(`${PROJECT_ROOT}/bench/results.json`)) as {
    bench: BenchResults;
  };
  const withBusy = (busy: number | null) =>
    formatBench({ ...saved.bench, machine: { ...saved.bench.machine, busyPercentBefore: busy } });
  assert.match(withBusy(35), /busy in the second before the run: 35 %/);
  assert.match(withBusy(35), /Warning: the machine was busy/);
  assert.doesNotMatch(withBusy(2), /Warning/);
  assert.match(withBusy(null), /busy in the second before the run: unknown/);
  assert.doesNotMatch(withBusy(null), /Warning/);
});
