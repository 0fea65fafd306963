/**
 * The folders of lib/ draw the architecture, and imports point one way: a DNS client that knows
 * nothing of routing, routing that does no I/O, a server that owns sockets, and an app layer
 * that alone knows every part. These tests read the import lines of every file and fail on one
 * that points the wrong way.
 *
 * @module
 */

import assert from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";

const ROOT = normalize(new URL("..", import.meta.url).pathname);

/** The folder of lib/ a file belongs to ("common", "dns", ...), or "main" for main.ts. */
type Layer = "common" | "dns" | "routing" | "server" | "app" | "main";

/** Which layers each layer may import from. */
const MAY_IMPORT: Record<Layer, readonly Layer[]> = {
  common: ["common"],
  dns: ["dns", "common"],
  routing: ["routing", "common"],
  server: ["server", "routing", "common"],
  app: ["app", "server", "routing", "dns", "common"],
  main: ["app", "server", "routing", "dns", "common"],
};

/** Routing may read the DNS outcome types, and nothing else of dns/. */
const ROUTING_MAY_USE = "lib/dns/types.ts";

/** What routing/ must not do: it decides from what it is given, with no sockets or files. */
const IO = [
  /\bDeno\.(connect|listen|listenDatagram|open|readFile|readTextFile|writeFile|writeTextFile|Command|remove|rename)\b/,
  /from "node:(dgram|net|fs|fs\/promises|child_process|http)"/,
];

function layerOf(path: string): Layer | null {
  if (path === "main.ts") return "main";
  const match = /^lib\/(common|dns|routing|server|app)\//.exec(path);
  return match === null ? null : match[1] as Layer;
}

async function sourceFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(join(ROOT, dir))) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) files.push(...await sourceFiles(path));
    else if (entry.name.endsWith(".ts")) files.push(path);
  }
  return files;
}

/** Every relative import of a file: `from "./x.ts"`, `import("./x.ts")`, with `type` marked. */
function importsOf(text: string): { spec: string; typeOnly: boolean }[] {
  const found: { spec: string; typeOnly: boolean }[] = [];
  const statements = /(^|\n)\s*(import|export)(\s+type)?[^;]*?from\s+"(\.[^"]+)"/g;
  for (const match of text.matchAll(statements)) {
    found.push({ spec: match[4], typeOnly: match[3] !== undefined });
  }
  for (const match of text.matchAll(/import\(\s*"(\.[^"]+)"\s*\)/g)) {
    found.push({ spec: match[1], typeOnly: false });
  }
  return found;
}

async function violations(): Promise<string[]> {
  const problems: string[] = [];
  for (const file of ["main.ts", ...await sourceFiles("lib")]) {
    const layer = layerOf(file);
    if (layer === null) {
      problems.push(`${file}: outside the layers (lib/common, dns, routing, server, app)`);
      continue;
    }
    const text = await Deno.readTextFile(join(ROOT, file));
    for (const { spec, typeOnly } of importsOf(text)) {
      const target = relative(ROOT, normalize(join(ROOT, dirname(file), spec)));
      const targetLayer = layerOf(target);
      if (targetLayer === null) {
        if (!target.endsWith(".json")) problems.push(`${file} imports ${target}, outside lib/`);
        continue;
      }
      const allowed = MAY_IMPORT[layer].includes(targetLayer) ||
        (layer === "routing" && target === ROUTING_MAY_USE && typeOnly);
      if (!allowed) problems.push(`${file} (${layer}) imports ${target} (${targetLayer})`);
    }
    if (layer === "routing") {
      for (const pattern of IO) {
        if (pattern.test(text)) problems.push(`${file} (routing) does I/O: ${pattern.source}`);
      }
    }
  }
  return problems;
}

Deno.test("imports point one way: dns/ and routing/ know nothing of server/ or app/", async () => {
  assert.deepEqual(await violations(), []);
});

Deno.test("the import check finds a wrong-way import, a routing socket and a stray file", () => {
  // The checker itself, on made-up sources: each must be caught.
  const dnsImportsRouting = importsOf('import { decide } from "../routing/router.ts";\n');
  assert.deepEqual(dnsImportsRouting, [{ spec: "../routing/router.ts", typeOnly: false }]);
  assert.ok(!MAY_IMPORT.dns.includes("routing"));
  const typeImport = importsOf('import type { MxOutcome } from "../dns/types.ts";\n');
  assert.deepEqual(typeImport, [{ spec: "../dns/types.ts", typeOnly: true }]);
  const multiLine = importsOf(
    'import {\n  a,\n  b,\n} from "./x.ts";\nconst m = await import("./y.ts");',
  );
  assert.deepEqual(multiLine.map((i) => i.spec), ["./x.ts", "./y.ts"]);
  assert.ok(IO.some((pattern) => pattern.test('import dgram from "node:dgram";')));
  assert.ok(IO.some((pattern) => pattern.test("await Deno.readTextFile(path)")));
  assert.equal(layerOf("lib/stray.ts"), null);
  assert.equal(layerOf("lib/routing/router.ts"), "routing");
});
