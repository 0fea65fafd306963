/**
 * The built-in catalog of mail providers (`providers.json` beside this file): each provider's
 * id, name, the MX host name suffixes that identify it, and where those suffixes come from.
 *
 * A host belongs to the provider whose suffix is the longest one it ends with, on a label
 * boundary: `x.mail.protection.outlook.com` ends with `mail.protection.outlook.com`, while
 * `mail.protection.outlook.com.attacker.example` and `evilmail.protection.outlook.com` end with
 * nothing in the catalog. No two providers may claim the same suffix; one provider's suffix may
 * lie inside another's (`example.net` and `eu.example.net`), and then the longer one wins.
 *
 * @module
 */

import catalogData from "./providers.json" with { type: "json" };

/** One mail provider of the catalog. */
export interface Provider {
  /** Lower-case `[a-z0-9]` words joined by `-`; fixed, so usable as a metric label. */
  readonly id: string;
  /** The name a mail admin knows. */
  readonly name: string;
  /** MX host name suffixes (lower-case, no leading or trailing dot, two labels or more). */
  readonly suffixes: readonly string[];
  /** The https page the suffixes come from. */
  readonly source: string;
  /** The date (YYYY-MM-DD) the source was last read. */
  readonly checked: string;
  /** The source page's own date (YYYY-MM-DD), where it shows one. */
  readonly published?: string;
  /** Further https pages that back the suffixes. */
  readonly seeAlso: readonly string[];
  /** What the sources say and how much weight they carry. */
  readonly note?: string;
}

/** A validated catalog with its lookups. */
export interface ProviderCatalog {
  /** The providers in file order. */
  readonly providers: readonly Provider[];
  /** The provider ids in file order. */
  readonly ids: readonly string[];
  /** The provider a host belongs to (longest suffix), or null. */
  providerOf(host: string): Provider | null;
  /** The provider with this id, or null. */
  providerById(id: string): Provider | null;
}

/** Where the built-in catalog lives, as error messages name it. */
export const CATALOG_FILE = "lib/routing/providers.json";

const ID = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;
/** Provider labels of the metrics for hosts outside the catalog and for no host at all. */
const RESERVED_IDS = new Set(["other", "none"]);
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;
const PROVIDER_KEYS = new Set([
  "id",
  "name",
  "suffixes",
  "source",
  "checked",
  "published",
  "see_also",
  "note",
]);

/**
 * Validates catalog data (the parsed JSON of `providers.json`) and builds its lookups. Each
 * problem is reported with the file, the entry and the fix; ids and suffixes must be unique.
 *
 * @example
 * ```ts
 * const catalog = parseCatalog({
 *   version: 1,
 *   providers: [{
 *     id: "example",
 *     name: "Example Mail",
 *     suffixes: ["mx.example.net"],
 *     source: "https://example.net/mx",
 *     checked: "2026-12-06",
 *   }],
 * }, { file: "test.json" });
 * catalog.providerOf("in1.mx.example.net")?.id; // "example"
 * ```
 */
export function parseCatalog(
  data: unknown,
  options: { file?: string } = {},
): ProviderCatalog {
  const file = options.file ?? CATALOG_FILE;
  const fail = (where: string, problem: string): never => {
    throw new Error(`${file}: ${where}: ${problem}`);
  };
  if (!isRecord(data)) fail("top level", "expected an object with version and providers");
  const top = data as Record<string, unknown>;
  if (top.version !== 1) fail("version", `expected 1, found ${JSON.stringify(top.version)}`);
  if (!Array.isArray(top.providers) || top.providers.length === 0) {
    fail("providers", "expected a non-empty array of providers");
  }
  const providers: Provider[] = [];
  const byId = new Map<string, Provider>();
  const bySuffix = new Map<string, Provider>();
  (top.providers as unknown[]).forEach((entry, index) => {
    const provider = parseProvider(entry, (problem) => {
      const id = isRecord(entry) && typeof entry.id === "string" ? ` (${entry.id})` : "";
      return fail(`providers[${index}]${id}`, problem);
    });
    const where = `providers[${index}] (${provider.id})`;
    if (byId.has(provider.id)) fail(where, `id "${provider.id}" is used twice; give it a new id`);
    byId.set(provider.id, provider);
    for (const suffix of provider.suffixes) {
      const owner = bySuffix.get(suffix);
      if (owner !== undefined) {
        fail(
          where,
          `suffix "${suffix}" is also claimed by "${owner.id}"; a suffix belongs to one provider`,
        );
      }
      bySuffix.set(suffix, provider);
    }
    providers.push(provider);
  });
  return Object.freeze({
    providers: Object.freeze(providers),
    ids: Object.freeze(providers.map((provider) => provider.id)),
    providerOf: (host: string) => longestSuffixMatch(bySuffix, host),
    providerById: (id: string) => byId.get(id) ?? null,
  });
}

function parseProvider(entry: unknown, fail: (problem: string) => never): Provider {
  if (!isRecord(entry)) return fail("expected an object");
  for (const key of Object.keys(entry)) {
    if (!PROVIDER_KEYS.has(key)) {
      fail(`unknown key "${key}"; the keys are ${[...PROVIDER_KEYS].join(", ")}`);
    }
  }
  const { id, name, suffixes, source, checked, published, see_also: seeAlso, note } = entry;
  if (typeof id !== "string" || !ID.test(id)) {
    fail(`id ${JSON.stringify(id)} must be lower-case letters and digits, words joined by "-"`);
  }
  if (RESERVED_IDS.has(id as string)) {
    fail(
      `id "${id}" is reserved: the metrics label hosts outside the catalog "other" and ` +
        `lookups without an MX host "none"; choose another id`,
    );
  }
  if (typeof name !== "string" || name.trim() === "") fail("name must be a non-empty string");
  if (!Array.isArray(suffixes) || suffixes.length === 0) {
    fail("suffixes must be a non-empty array of host names");
  }
  const seen = new Set<string>();
  for (const suffix of suffixes as unknown[]) {
    if (typeof suffix !== "string" || !isSuffix(suffix)) {
      fail(
        `suffix ${JSON.stringify(suffix)} is not a lower-case host name of two labels or more; ` +
          `write it like "mail.protection.outlook.com", without a leading dot`,
      );
    }
    if (seen.has(suffix as string)) fail(`suffix "${suffix}" is listed twice`);
    seen.add(suffix as string);
  }
  if (!isHttpsUrl(source)) fail(`source ${JSON.stringify(source)} must be an https URL`);
  if (!isDate(checked)) fail(`checked ${JSON.stringify(checked)} must be a date, YYYY-MM-DD`);
  if (published !== undefined && !isDate(published)) {
    fail(`published ${JSON.stringify(published)} must be a date, YYYY-MM-DD`);
  }
  if (seeAlso !== undefined && (!Array.isArray(seeAlso) || !seeAlso.every(isHttpsUrl))) {
    fail("see_also must be an array of https URLs");
  }
  if (note !== undefined && (typeof note !== "string" || note.trim() === "")) {
    fail("note, when given, must be a non-empty string");
  }
  return Object.freeze({
    id: id as string,
    name: name as string,
    suffixes: Object.freeze([...(suffixes as string[])]),
    source: source as string,
    checked: checked as string,
    ...(published === undefined ? {} : { published: published as string }),
    seeAlso: Object.freeze([...((seeAlso as string[] | undefined) ?? [])]),
    ...(note === undefined ? {} : { note: note as string }),
  });
}

// One map lookup per label: the host itself, then each tail after a dot, longest first.
function longestSuffixMatch(
  bySuffix: ReadonlyMap<string, Provider>,
  host: string,
): Provider | null {
  let name = host.toLowerCase();
  if (name.endsWith(".")) name = name.slice(0, -1);
  let start = 0;
  while (start < name.length) {
    const provider = bySuffix.get(start === 0 ? name : name.slice(start));
    if (provider !== undefined) return provider;
    const dot = name.indexOf(".", start);
    if (dot < 0) break;
    start = dot + 1;
  }
  return null;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isSuffix(value: string): boolean {
  const labels = value.split(".");
  return value.length <= 253 && labels.length >= 2 && labels.every((label) => LABEL.test(label));
}

function isHttpsUrl(value: unknown): boolean {
  if (typeof value !== "string") return false;
  try {
    return new URL(value).protocol === "https:";
  } catch {
    return false;
  }
}

function isDate(value: unknown): boolean {
  if (typeof value !== "string" || !DATE.test(value)) return false;
  const date = new Date(`${value}T00:00:00Z`);
  return !Number.isNaN(date.getTime()) && date.toISOString().startsWith(value);
}

/** The built-in catalog, validated when this module loads. */
export const PROVIDER_CATALOG: ProviderCatalog = parseCatalog(catalogData);

/**
 * The ids of the built-in providers: a fixed set, fit for metric labels.
 *
 * @example
 * ```ts
 * PROVIDER_IDS.includes("microsoft365"); // true
 * ```
 */
export const PROVIDER_IDS: readonly string[] = PROVIDER_CATALOG.ids;

/**
 * The built-in provider an MX host belongs to, by the longest suffix it ends with on a label
 * boundary, or null. Case and one trailing dot are ignored.
 *
 * @example
 * ```ts
 * providerOf("contoso-com.mail.protection.outlook.com")?.id; // "microsoft365"
 * providerOf("mail.protection.outlook.com.attacker.example"); // null
 * ```
 */
export function providerOf(host: string): Provider | null {
  return PROVIDER_CATALOG.providerOf(host);
}

/**
 * The built-in provider with this id, or null.
 *
 * @example
 * ```ts
 * providerById("google")?.suffixes; // ["google.com", "googlemail.com"]
 * ```
 */
export function providerById(id: string): Provider | null {
  return PROVIDER_CATALOG.providerById(id);
}

/**
 * The catalog as lines for a person: per provider its id and name, its suffixes, its source
 * with the date it was checked, further sources and the note.
 *
 * @example
 * ```ts
 * console.log(formatProviderCatalog().join("\n"));
 * ```
 */
export function formatProviderCatalog(catalog: ProviderCatalog = PROVIDER_CATALOG): string[] {
  const lines: string[] = [];
  for (const provider of catalog.providers) {
    if (lines.length > 0) lines.push("");
    const published = provider.published === undefined ? "" : `, page dated ${provider.published}`;
    lines.push(`${provider.id}: ${provider.name}`);
    lines.push(`  suffixes: ${provider.suffixes.join(", ")}`);
    lines.push(`  source:   ${provider.source} (checked ${provider.checked}${published})`);
    for (const url of provider.seeAlso) lines.push(`  see also: ${url}`);
    if (provider.note !== undefined) lines.push(`  note:     ${provider.note}`);
  }
  return lines;
}
