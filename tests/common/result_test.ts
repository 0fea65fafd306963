import assert from "node:assert/strict";
import { err, ok, type Result } from "../../lib/common/result.ts";

Deno.test("ok holds the value and err the error, told apart by ok", () => {
  const results: Result<number>[] = [ok(25), err("not a port")];
  assert.deepEqual(results, [{ ok: true, value: 25 }, { ok: false, error: "not a port" }]);
  const described = results.map((result) => result.ok ? `port ${result.value}` : result.error);
  assert.deepEqual(described, ["port 25", "not a port"]);
});
