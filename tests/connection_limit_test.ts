import assert from "node:assert/strict";
import { ConnectionLimit, EVICT_IDLE_MS, type TrackedConnection } from "../lib/connection_limit.ts";

function connection(fields: Partial<TrackedConnection>): TrackedConnection {
  return { busy: false, partialSince: 0, closed: false, lastActive: 0, ...fields };
}

Deno.test("ConnectionLimit.makeRoom closes the connection idle longest, never one with a request under way", () => {
  const limit = new ConnectionLimit(5);
  const now = 100_000;
  const closed: string[] = [];
  // Closing ends the connection's handler, which forgets it (as the server's does).
  const add = (name: string, fields: Partial<TrackedConnection>) => {
    const forget: () => void = limit.track(connection(fields), () => {
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
  assert.equal(limit.makeRoom(now), true);
  assert.deepEqual(closed, ["old"]);
  assert.equal(limit.makeRoom(now), true);
  assert.deepEqual(closed, ["old", "older"]);
  assert.equal(limit.makeRoom(now), false, "only recent or busy ones left");
  // One byte sent long ago and nothing since: a hoarder, not a client mid-request.
  add("stalled", { partialSince: now - 3 * EVICT_IDLE_MS, lastActive: now - 3 * EVICT_IDLE_MS });
  assert.equal(limit.makeRoom(now), true);
  assert.deepEqual(closed, ["old", "older", "stalled"]);
});

Deno.test("ConnectionLimit.makeRoom: nothing to close when every connection is busy or recent", () => {
  const limit = new ConnectionLimit(2);
  const now = 100_000;
  limit.track(connection({ busy: true }), () => assert.fail("closed a busy connection"));
  limit.track(
    connection({ lastActive: now - 10 }),
    () => assert.fail("closed a recent connection"),
  );
  limit.track(connection({ closed: true }), () => assert.fail("closed a closed connection"));
  assert.equal(limit.makeRoom(now), false);
  assert.equal(new ConnectionLimit(0).makeRoom(now), false, "a limit with no connections");
});

Deno.test("ConnectionLimit: open counts tracked connections; admit below the limit or by room", () => {
  const limit = new ConnectionLimit(1);
  const now = 100_000;
  assert.equal(limit.open, 0);
  assert.equal(limit.admit(now), true);
  const forget = limit.track(connection({ lastActive: now - 10 }), () => {});
  assert.equal(limit.open, 1);
  assert.equal(limit.admit(now), false, "at the limit, nothing idle to close");
  forget();
  assert.equal(limit.open, 0);
  assert.equal(limit.admit(now), true);
});
