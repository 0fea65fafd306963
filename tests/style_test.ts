/**
 * The house rules as tests: the code is formatted, lint-clean and type-checks (the examples in
 * its JSDoc too), and every export of lib/ is documented, so CI (which runs only
 * `deno task test`) refuses a change that breaks any of them.
 *
 * @module
 */

import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url).pathname;

async function deno(
  args: string[],
): Promise<{ code: number; stdout: string; output: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  const out = decoder.decode(stdout);
  return { code, stdout: out, output: out + decoder.decode(stderr) };
}

Deno.test("deno fmt --check finds nothing to reformat", async () => {
  const { code, output } = await deno(["fmt", "--check"]);
  assert.equal(code, 0, output);
});

Deno.test("deno lint finds no problem", async () => {
  const { code, output } = await deno(["lint"]);
  assert.equal(code, 0, output);
});

Deno.test("deno task check passes (the router, its tests, the bench and their JSDoc examples)", async () => {
  const { code, output } = await deno(["task", "check"]);
  assert.equal(code, 0, output);
});

/** The part of `deno doc --json` these tests read. */
interface DocJson {
  nodes: Record<string, {
    symbols?: {
      name: string;
      declarations: {
        declarationKind: string;
        kind: string;
        location: { line: number };
        jsDoc?: { doc?: string; tags?: { kind: string }[] };
      }[];
    }[];
  }>;
}

/** One exported declaration of lib/ or main.ts: where, what, and its JSDoc. */
interface ExportDoc {
  /** `lib/x.ts:12 name`. */
  where: string;
  kind: string;
  documented: boolean;
  hasExample: boolean;
}

async function exportDocs(): Promise<ExportDoc[]> {
  const { code, stdout, output } = await deno(["doc", "--json", "main.ts", "lib/"]);
  assert.equal(code, 0, output);
  const found: ExportDoc[] = [];
  const modules = Object.entries((JSON.parse(stdout) as DocJson).nodes);
  // A JSON module (providers.json) has a default export and no place for a comment.
  for (const [url, module] of modules.filter(([url]) => url.endsWith(".ts"))) {
    for (const symbol of module.symbols ?? []) {
      for (const declaration of symbol.declarations) {
        if (declaration.declarationKind !== "export") continue;
        const { jsDoc, kind, location } = declaration;
        found.push({
          where: `${url.slice(`file://${ROOT}`.length)}:${location.line} ${symbol.name}`,
          kind,
          documented: (jsDoc?.doc ?? "").trim() !== "",
          hasExample: (jsDoc?.tags ?? []).some((tag) => tag.kind === "example"),
        });
      }
    }
  }
  return found;
}

Deno.test("every export of lib/ and main.ts has JSDoc", async () => {
  const undocumented = (await exportDocs()).filter((e) => !e.documented).map((e) => e.where);
  assert.deepEqual(undocumented, [], "add a JSDoc comment to each");
});

Deno.test("every exported function and class of lib/ has an example", async () => {
  const withoutExample = (await exportDocs())
    .filter((e) => (e.kind === "function" || e.kind === "class") && !e.hasExample)
    .map((e) => e.where);
  assert.deepEqual(withoutExample, [], "add an @example (it is type-checked) to each");
});
