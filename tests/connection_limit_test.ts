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
  // Closing ends the connection's handler, which forgets it (as the server's does).
  const add = (name: string, fields: Partial<TrackedConnection>) => {
    const forget: () => void = track(limit, connection(fields), () => {
      closed.push(name);
      forget();
    });
  };
  add("busy", { busy: true, lastActive: 1 });
  add("partial", { partialSince: now - 100, lastActive: 2 });
  add("recent", { lastActive: now - EVICT_IDLE_MS + 1 });
  // Its stamp may lag the real time by a second (a coarse clock): not surely idle 2 s yet.
  add("maybe recent", { lastActive: now - EVICT_IDLE_MS - 900 });
  add("old", { lastActive: 10 });
  add("older", { lastActive: now - 2 * EVICT_IDLE_MS });
  // Oldest first among the idle ones: "old" (last active at 10) before "older".
  assert.equal(makeRoom(limit, now), true);
  assert.deepEqual(closed, ["old"]);
  assert.equal(makeRoom(limit, now), true);
  assert.deepEqual(closed, ["old", "older"]);
  assert.equal(makeRoom(limit, now), false, "only recent or busy ones left");
  // One byte sent long ago and nothing since: a hoarder, not a client mid-request.
  add("stalled", { partialSince: now - 3 * EVICT_IDLE_MS, lastActive: now - 3 * EVICT_IDLE_MS });
  assert.equal(makeRoom(limit, now), true);
  assert.deepEqual(closed, ["old", "older", "stalled"]);
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
