import assert from "node:assert/strict";
import {
  type NotifyRun,
  startStatusUpdates,
  statusText,
  SystemdNotifier,
} from "../../lib/app/systemd_notify.ts";

/** A runner that records each call's arguments; `results` says how each run ends. */
function recordingRunner(results: NotifyRun[] = []) {
  const calls: string[][] = [];
  const run = (args: string[]) => {
    calls.push(args);
    return Promise.resolve(results.shift() ?? { success: true, detail: "" });
  };
  return { calls, run };
}

Deno.test("systemd notify: messages go to systemd-notify in call order, one run each", async () => {
  const { calls, run } = recordingRunner();
  const notifier = new SystemdNotifier({ socket: "/run/systemd/notify", run });
  assert.equal(notifier.enabled, true);
  notifier.ready("0 lookups");
  notifier.reloading();
  notifier.ready("5 lookups");
  notifier.status("line\nbreak");
  notifier.stopping();
  await notifier.settled();
  assert.deepEqual(calls, [
    ["READY=1", "STATUS=0 lookups"],
    ["RELOADING=1"],
    ["READY=1", "STATUS=5 lookups"],
    ["STATUS=line break"],
    ["STOPPING=1"],
  ]);
});

Deno.test("systemd notify: a run waits for the one before it", async () => {
  const calls: string[] = [];
  const finishers: (() => void)[] = [];
  const notifier = new SystemdNotifier({
    socket: "/run/systemd/notify",
    run: (args) => {
      calls.push(args[0]);
      return new Promise((resolve) => finishers.push(() => resolve({ success: true, detail: "" })));
    },
  });
  notifier.reloading();
  notifier.ready();
  await Promise.resolve();
  assert.deepEqual(calls, ["RELOADING=1"], "READY=1 not started while RELOADING=1 is running");
  finishers[0]();
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(calls, ["RELOADING=1", "READY=1"]);
  finishers[1]();
  await notifier.settled();
});

Deno.test("systemd notify: nothing is run without NOTIFY_SOCKET", async () => {
  for (const socket of [undefined, ""]) {
    const { calls, run } = recordingRunner();
    const notifier = new SystemdNotifier({ socket, run });
    assert.equal(notifier.enabled, false);
    notifier.ready("x");
    notifier.reloading();
    notifier.stopping();
    const updates = startStatusUpdates(notifier, () => "x", 1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    updates.stop();
    await notifier.settled();
    assert.deepEqual(calls, [], `socket ${JSON.stringify(socket)}`);
  }
});

Deno.test("systemd notify: a failure is told once, never thrown, and later messages still go", async () => {
  const failures: string[] = [];
  const { calls, run } = recordingRunner([
    { success: false, detail: "Failed to notify init system: Permission denied" },
    { success: false, detail: "again" },
  ]);
  const notifier = new SystemdNotifier({
    socket: "/run/systemd/notify",
    run: (args) => args[0] === "STOPPING=1" ? Promise.reject(new Error("spawn failed")) : run(args),
    onFirstFailure: (message) => failures.push(message),
  });
  await notifier.ready();
  await notifier.status("s");
  await notifier.stopping();
  await notifier.ready();
  assert.equal(calls.length, 3, "every message was tried");
  assert.deepEqual(failures, [
    "systemd notification READY=1 failed: Failed to notify init system: Permission denied; systemd may not learn that the router is ready or reloading (a Type=notify start then times out): install systemd-notify (Debian package systemd) and keep NotifyAccess=all in the unit; later failures are not logged",
  ]);
});

Deno.test("systemd notify: the status text has lookups, the cache hit ratio and DNS failures", () => {
  assert.equal(
    statusText({ lookups: 1000, cacheHits: 900, cacheMisses: 100, dnsFailures: 2 }),
    "1000 lookups, cache hit ratio 90.0 %, 2 DNS failures",
  );
  assert.equal(
    statusText({ lookups: 0, cacheHits: 0, cacheMisses: 0, dnsFailures: 1 }),
    "0 lookups, cache hit ratio -, 1 DNS failure",
  );
});

Deno.test("systemd notify: the status line is refreshed on the interval until stopped", async () => {
  const { calls, run } = recordingRunner();
  const notifier = new SystemdNotifier({ socket: "/run/systemd/notify", run });
  let count = 0;
  const updates = startStatusUpdates(notifier, () => `${++count} lookups`, 5);
  while (calls.length < 2) await new Promise((resolve) => setTimeout(resolve, 5));
  updates.stop();
  const seen = calls.length;
  await new Promise((resolve) => setTimeout(resolve, 30));
  await notifier.settled();
  assert.equal(calls.length, seen, "no update after stop");
  assert.deepEqual(calls.slice(0, 2), [["STATUS=1 lookups"], ["STATUS=2 lookups"]]);
});
