import assert from "node:assert/strict";
import { groupId, openListener, removeOwnSocket } from "../../lib/server/listen.ts";

const UNIX = { mode: 0o660, gid: null };

Deno.test("unix socket: made with its mode; a served one is refused, a stale one replaced", async () => {
  const tmp = await Deno.makeTempDir();
  const path = `${tmp}/mxroute.sock`;
  const address = { transport: "unix", path } as const;
  try {
    const first = await openListener(address, UNIX);
    const stat = await Deno.lstat(path);
    assert.equal(stat.isSocket, true);
    assert.equal(stat.mode! & 0o777, 0o660);
    assert.match(first.socketFile ?? "", new RegExp(`:${stat.ino}:`));
    // Another instance on the same path must not take the socket from the one serving it.
    await assert.rejects(
      openListener(address, UNIX),
      new RegExp(`${path} is in use: another process accepts connections on it`),
    );
    (await Deno.connect({ transport: "unix", path })).close();
    // Once nobody accepts on it, the socket left behind is replaced.
    first.listener.close();
    await new Promise((resolve) => setTimeout(resolve, 5)); // a later change time
    const second = await openListener(address, UNIX);
    assert.notEqual(second.socketFile, first.socketFile);
    // The first instance stopping now must leave the second one's socket alone.
    await removeOwnSocket(path, first.socketFile!);
    assert.equal((await Deno.lstat(path)).isSocket, true);
    await removeOwnSocket(path, second.socketFile!);
    await assert.rejects(Deno.lstat(path), Deno.errors.NotFound);
    second.listener.close();
    // Any other kind of file is never deleted.
    await Deno.writeTextFile(path, "");
    await assert.rejects(openListener(address, UNIX), /exists and is not a socket/);
    assert.equal((await Deno.lstat(path)).isFile, true);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("tcp listener: no socket file to own", async () => {
  const opened = await openListener({ transport: "tcp", host: "127.0.0.1", port: 0 }, UNIX);
  assert.equal(opened.socketFile, null);
  opened.listener.close();
});

Deno.test("groupId: by name from /etc/group, numbers as they are", () => {
  assert.equal(groupId("root:x:0:\npostfix:x:110:\n", "postfix"), 110);
  assert.equal(groupId("root:x:0:\n", "postfix"), null);
  assert.equal(groupId("", "123"), 123);
});
