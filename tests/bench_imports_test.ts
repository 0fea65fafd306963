/**
 * Which way imports go between the bench and the tests: bench/ uses the router (lib/) and the test
 * fakes (tests/support/), never a test; in tests/ only the bench's own tests (tests/bench_*_test.ts)
 * import bench/; the router imports neither.
 */

import assert from "node:assert/strict";
import { PROJECT_ROOT } from "./support/router_process.ts";

/** The project's TypeScript files under `dir`, as paths from the project root. */
function sources(dir: string): string[] {
  const found: string[] = [];
  for (const entry of Deno.readDirSync(`${PROJECT_ROOT}/${dir}`)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) found.push(...sources(path));
    else if (entry.name.endsWith(".ts")) found.push(path);
  }
  return found;
}

/** The project files a file imports or re-exports, as paths from the project root. */
function localImports(path: string): string[] {
  const text = Deno.readTextFileSync(`${PROJECT_ROOT}/${path}`);
  const from =
    /^\s*(?:import|export)\b[^;]*?\bfrom\s+"(\.{1,2}\/[^"]+)"|^\s*import\s+"(\.{1,2}\/[^"]+)"/gm;
  return [...text.matchAll(from)].map((match) => {
    const url = new URL(match[1] ?? match[2], `file://${PROJECT_ROOT}/${path}`);
    return url.pathname.slice(PROJECT_ROOT.length + 1);
  });
}

/** Every import of a file under `from` that `allowed` refuses, as "file -> import". */
function offending(from: string, allowed: (file: string, target: string) => boolean): string[] {
  return sources(from).flatMap((file) =>
    localImports(file).filter((target) => !allowed(file, target)).map((t) => `${file} -> ${t}`)
  );
}

Deno.test("bench/ imports lib/, tests/support/ and itself, never a test", () => {
  const bench = sources("bench").flatMap(localImports);
  assert.ok(bench.some((target) => target.startsWith("tests/support/")), "the scan finds imports");
  assert.deepEqual(
    offending("bench", (_, target) => /^(lib|bench|tests\/support)\//.test(target)),
    [],
  );
});

Deno.test("in tests/ only the bench's own tests import bench/", () => {
  assert.deepEqual(
    offending(
      "tests",
      (file, target) => !target.startsWith("bench/") || /^tests\/bench_\w+_test\.ts$/.test(file),
    ),
    [],
  );
});

Deno.test("lib/ imports neither bench/ nor tests/", () => {
  assert.deepEqual(offending("lib", (_, target) => !/^(bench|tests)\//.test(target)), []);
});
