import assert from "node:assert/strict";
import { withLog } from "../support/log_capture.ts";
import {
  ConnectionLimit,
  type LimitPlace,
  type TrackedConnection,
} from "../../lib/server/connection_limit.ts";
import { FAULT_LOG_INTERVAL_MS, heldBackText, LogThrottle } from "../../lib/common/log_throttle.ts";

interface Fake extends TrackedConnection {
  busy: boolean;
  closed: boolean;
  place: LimitPlace;
}

/** A limit whose connections are closed (and forgotten) through `close`, as the server's are. */
function limitOf(max: number) {
  const limit = new ConnectionLimit(max);
  const closed: string[] = [];
  const add = (name: string, fields: Partial<Fake> = {}): Fake => {
    const connection = { busy: false, closed: false, ...fields } as Fake;
    connection.place = limit.track(connection, () => {
      connection.closed = true;
      closed.push(name);
      connection.place.forget();
    });
    return connection;
  };
  return { limit, closed, add };
}

Deno.test("at the limit the connection waiting longest since its last request gives way, however recent", async () => {
  const { limit, closed, add } = limitOf(4);
  add("busy oldest", { busy: true });
  const first = add("first");
  add("second");
  add("third");
  // A lookup a second on each: "first" asks again, so "second" has now waited longest.
  first.place.renew();
  await withLog(() => {
    assert.equal(limit.admit(), true);
    assert.deepEqual(closed, ["second"]);
    add("new"); // the one admitted
    assert.equal(limit.admit(), true);
    assert.deepEqual(closed, ["second", "third"]);
  });
  assert.equal(limit.evicted, 2);
  assert.equal(limit.refused, 0);
});

Deno.test("a connection with its reply under way gives way last, but a new one is always served", async () => {
  const { limit, closed, add } = limitOf(3);
  add("a", { busy: true });
  add("b", { busy: true });
  add("c");
  await withLog(() => {
    // An idle one goes first, even though the busy ones waited longer.
    assert.equal(limit.admit(), true);
    assert.deepEqual(closed, ["c"]);
    add("d", { busy: true });
    // Every one busy (a client pipelining requests and never reading the replies stays busy for
    // minutes): the one that waited longest goes, so Postfix is never locked out.
    assert.equal(limit.admit(), true);
    assert.deepEqual(closed, ["c", "a"]);
  });
  assert.equal(limit.evicted, 2);
  assert.equal(limit.refused, 0);
  assert.equal(new ConnectionLimit(0).makeRoom(), false, "a limit with no connections");
});

Deno.test("the search for an idle connection is bounded: past 64 busy ones, the oldest goes", async () => {
  const { limit, closed, add } = limitOf(100);
  for (let i = 0; i < 99; i++) add(`busy${i}`, { busy: true });
  add("idle, but 100th in line");
  await withLog(() => assert.equal(limit.admit(), true));
  assert.deepEqual(closed, ["busy0"]);
});

Deno.test("ConnectionLimit: open counts tracked connections; below the limit nothing is closed", () => {
  const { limit, closed, add } = limitOf(2);
  assert.equal(limit.admit(), true);
  add("a");
  assert.equal(limit.open, 1);
  assert.equal(limit.admit(), true);
  assert.deepEqual(closed, []);
  const b = add("b");
  b.place.forget();
  b.place.forget();
  assert.equal(limit.open, 1, "forgetting twice counts once");
});

Deno.test("evictions and refusals are logged at warning, once a minute each, with the count left out", async () => {
  const { limit, add } = limitOf(1);
  const none = new ConnectionLimit(0);
  await withLog((lines) => {
    for (let i = 0; i < 5; i++) {
      add(`c${i}`);
      assert.equal(limit.admit(1000 + i), true);
    }
    for (let i = 0; i < 3; i++) assert.equal(none.admit(2000 + i), false);
    add("late");
    assert.equal(limit.admit(1000 + FAULT_LOG_INTERVAL_MS), true);
    assert.equal(lines.length, 3, lines.join("\n"));
    assert.match(
      lines[0],
      /^warning --max-connections \(1\) reached: closed the connection waiting longest/,
    );
    assert.match(
      lines[1],
      /^warning --max-connections \(0\) reached and no connection could be closed: refused a new connection \(1 refused since start\)$/,
    );
    assert.match(lines[2], /closed so far.*\(4 more since the last such line, not logged\)$/);
  });
  assert.equal(limit.evicted, 6);
  assert.equal(none.refused, 3);
});

Deno.test("LogThrottle lets one event through per interval and counts the rest", () => {
  const throttle = new LogThrottle(1000);
  assert.equal(throttle.pass(0), 0);
  assert.equal(throttle.pass(10), null);
  assert.equal(throttle.pass(999), null);
  assert.equal(throttle.pass(1000), 2);
  assert.equal(throttle.pass(5000), 0);
  assert.equal(heldBackText(0), "");
  assert.equal(heldBackText(2), " (2 more since the last such line, not logged)");
});
