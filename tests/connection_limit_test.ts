import assert from "node:assert/strict";
import {
  type ConnectionLimit,
  EVICT_IDLE_MS,
  makeRoom,
  track,
  type TrackedConnection,
} from "../lib/connection_limit.ts";

function connection(fields: Partial<TrackedConnection>): TrackedConnection {
  return { busy: false, partialSince: 0, closed: false, lastActive: 0, ...fields };
}

Deno.test("makeRoom closes the connection idle longest, never one with a request under way", () => {
  const limit: ConnectionLimit = { open: 5, max: 5, refused: 0 };
  const now = 100_000;
  const closed: string[] = [];
  const add = (name: string, fields: Partial<TrackedConnection>) =>
    track(limit, connection(fields), () => closed.push(name));
  add("busy", { busy: true, lastActive: 1 });
  add("partial", { partialSince: 2, lastActive: 2 });
  add("recent", { lastActive: now - EVICT_IDLE_MS + 1 });
  const forgetOld = add("old", { lastActive: 10 });
  add("older", { lastActive: now - 2 * EVICT_IDLE_MS });
  // Oldest first among the idle ones: "old" (last active at 10) before "older".
  assert.equal(makeRoom(limit, now), true);
  assert.deepEqual(closed, ["old"]);
  forgetOld(); // its handler ended
  assert.equal(makeRoom(limit, now), true);
  assert.deepEqual(closed, ["old", "older"]);
});

Deno.test("makeRoom: nothing to close when every connection is busy or recent", () => {
  const limit: ConnectionLimit = { open: 2, max: 2, refused: 0 };
  const now = 100_000;
  track(limit, connection({ busy: true }), () => assert.fail("closed a busy connection"));
  track(
    limit,
    connection({ lastActive: now - 10 }),
    () => assert.fail("closed a recent connection"),
  );
  track(limit, connection({ closed: true }), () => assert.fail("closed a closed connection"));
  assert.equal(makeRoom(limit, now), false);
  assert.equal(makeRoom({ open: 0, max: 0, refused: 0 }, now), false, "an unknown limit");
});
