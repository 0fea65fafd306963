/**
 * The provider catalog table of docs/providers.md is generated from lib/routing/providers.json:
 * every provider, in file order, with its id, name, suffixes and source. When they differ, the
 * failure prints the table to paste between the markers (`deno fmt` aligns it).
 *
 * @module
 */

import assert from "node:assert/strict";
import { PROVIDER_CATALOG, type ProviderCatalog } from "../lib/routing/providers.ts";

const DOC = new URL("../docs/providers.md", import.meta.url);
const BEGIN = "<!-- provider catalog:";
const END = "<!-- end of provider catalog -->";

/** The catalog as markdown table rows: a header, a rule, one row per provider. */
function catalogTable(catalog: ProviderCatalog): string[][] {
  return [
    ["id", "provider", "MX suffixes", "source"],
    ["---", "---", "---", "---"],
    ...catalog.providers.map((provider) => [
      `\`${provider.id}\``,
      provider.name,
      provider.suffixes.map((suffix) => `\`${suffix}\``).join(", "),
      `[checked ${provider.checked}](${provider.source})`,
    ]),
  ];
}

/** The cells of the table between the markers, trimmed (alignment is `deno fmt`'s business). */
function documentedTable(text: string): string[][] {
  const begin = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  assert.ok(begin >= 0 && end > begin, `docs/providers.md: the markers "${BEGIN}" and "${END}"`);
  const body = text.slice(text.indexOf("\n", begin) + 1, end);
  return body.split("\n").filter((line) => line.startsWith("|")).map((line) =>
    line.slice(1, -1).split("|").map((cell) => cell.trim()).map((cell) =>
      /^-+$/.test(cell) ? "---" : cell
    )
  );
}

function markdown(rows: string[][]): string {
  return rows.map((cells) => `| ${cells.join(" | ")} |`).join("\n");
}

Deno.test("docs/providers.md lists the catalog as lib/routing/providers.json has it", async () => {
  const expected = catalogTable(PROVIDER_CATALOG);
  const documented = documentedTable(await Deno.readTextFile(DOC));
  assert.deepEqual(
    documented,
    expected,
    `docs/providers.md: the catalog table differs from lib/routing/providers.json; put this ` +
      `between its markers, then run deno fmt docs/providers.md:\n${markdown(expected)}\n`,
  );
});

Deno.test("a provider missing from the table, or a changed suffix, is found", () => {
  const table = catalogTable(PROVIDER_CATALOG);
  const text = `${BEGIN} x -->\n\n${markdown(table.slice(0, -1))}\n\n${END}\n`;
  assert.notDeepEqual(documentedTable(text), table);
  const changed = table.map((row) => [...row]);
  changed[2][2] = "`mail.protection.outlook.com`";
  assert.notDeepEqual(documentedTable(`${BEGIN} x -->\n${markdown(changed)}\n${END}`), table);
  assert.deepEqual(documentedTable(`${BEGIN} x -->\n${markdown(table)}\n${END}`), table);
});
