/**
 * The house rules as tests: the code is formatted, lint-clean and type-checks, so CI (which runs
 * only `deno task test`) refuses a change that breaks any of them.
 *
 * @module
 */

import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url).pathname;

async function deno(args: string[]): Promise<{ code: number; output: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code, output: decoder.decode(stdout) + decoder.decode(stderr) };
}

Deno.test("deno fmt --check finds nothing to reformat", async () => {
  const { code, output } = await deno(["fmt", "--check"]);
  assert.equal(code, 0, output);
});

Deno.test("deno lint finds no problem", async () => {
  const { code, output } = await deno(["lint"]);
  assert.equal(code, 0, output);
});

Deno.test("deno task check passes (the router, its tests and the bench)", async () => {
  const { code, output } = await deno(["task", "check"]);
  assert.equal(code, 0, output);
});
