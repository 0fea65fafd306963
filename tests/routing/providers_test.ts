import assert from "node:assert/strict";
import {
  CATALOG_FILE,
  formatProviderCatalog,
  parseCatalog,
  PROVIDER_CATALOG,
  PROVIDER_IDS,
  providerById,
  providerOf,
} from "../../lib/routing/providers.ts";

const RAW = JSON.parse(
  await Deno.readTextFile(new URL("../../lib/routing/providers.json", import.meta.url)),
);
const BUILT_IN = PROVIDER_CATALOG.providers;

/** A one-provider entry that passes validation, to vary one field at a time. */
function entry(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: "example",
    name: "Example Mail",
    suffixes: ["mx.example.net"],
    source: "https://example.net/mx",
    checked: "2026-12-06",
    ...overrides,
  };
}

function catalogOf(...providers: unknown[]): unknown {
  return { version: 1, providers };
}

/** The message of the error that parsing this data throws; fails the test when none is thrown. */
function refusal(data: unknown, options?: { file?: string }): string {
  try {
    parseCatalog(data, options);
  } catch (error) {
    assert.ok(error instanceof Error);
    return error.message;
  }
  assert.fail(`accepted: ${JSON.stringify(data)}`);
}

Deno.test("every catalog entry has an id, a name, suffixes, an https source and a checked date", () => {
  assert.ok(RAW.providers.length >= 12, "the issue's minimum set of providers");
  for (const provider of RAW.providers) {
    const label = JSON.stringify(provider.id);
    assert.match(provider.id, /^[a-z0-9]+(?:-[a-z0-9]+)*$/, label);
    assert.equal(typeof provider.name, "string", label);
    assert.notEqual(provider.name.trim(), "", label);
    assert.ok(Array.isArray(provider.suffixes) && provider.suffixes.length > 0, label);
    assert.equal(new URL(provider.source).protocol, "https:", label);
    assert.match(provider.checked, /^\d{4}-\d{2}-\d{2}$/, label);
    for (const url of provider.see_also ?? []) assert.equal(new URL(url).protocol, "https:", label);
  }
});

Deno.test("the catalog names the providers the issue asks for", () => {
  for (
    const id of [
      "microsoft365",
      "outlook-consumer",
      "google",
      "yahoo",
      "apple",
      "mimecast",
      "proofpoint",
      "barracuda",
      "gmx-webde",
      "zoho",
      "fastmail",
      "yandex",
    ]
  ) {
    assert.ok(providerById(id), id);
  }
});

Deno.test("suffixes are lower-case host names of two labels or more, without a leading dot", () => {
  const label = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
  for (const provider of BUILT_IN) {
    for (const suffix of provider.suffixes) {
      const labels = suffix.split(".");
      assert.ok(labels.length >= 2, suffix);
      assert.ok(labels.every((part) => label.test(part)), suffix);
    }
  }
});

Deno.test("no two providers claim the same suffix", () => {
  const owner = new Map<string, string>();
  for (const provider of BUILT_IN) {
    for (const suffix of provider.suffixes) {
      assert.equal(owner.get(suffix), undefined, `${suffix}: ${owner.get(suffix)}, ${provider.id}`);
      owner.set(suffix, provider.id);
    }
  }
});

Deno.test("no built-in suffix lies inside another provider's suffix", () => {
  // Nesting would be resolved (the longest suffix wins), but in the built-in catalog it would
  // mean one provider's hosts are claimed by another: none is expected.
  const all = BUILT_IN.flatMap((provider) =>
    provider.suffixes.map((suffix) => ({ provider, suffix }))
  );
  for (const inner of all) {
    for (const outer of all) {
      if (inner === outer) continue;
      assert.ok(
        !inner.suffix.endsWith(`.${outer.suffix}`),
        `${inner.suffix} (${inner.provider.id}) ends with ${outer.suffix} (${outer.provider.id})`,
      );
    }
  }
});

Deno.test("providerOf finds the provider of real MX host names", () => {
  const cases: [string, string][] = [
    ["contoso-com.mail.protection.outlook.com", "microsoft365"],
    ["contoso-com.l-v1.mx.microsoft", "microsoft365"],
    ["contoso-com.j-v1.mx.microsoft", "microsoft365"],
    ["hotmail-com.olc.protection.outlook.com", "outlook-consumer"],
    ["eur.olc.protection.outlook.com", "outlook-consumer"],
    ["aspmx.l.google.com", "google"],
    ["smtp.google.com", "google"],
    ["gmail-smtp-in.l.google.com", "google"],
    ["aspmx2.googlemail.com", "google"],
    ["mta5.am0.yahoodns.net", "yahoo"],
    ["mx01.mail.icloud.com", "apple"],
    ["us-smtp-inbound-1.mimecast.com", "mimecast"],
    ["za-smtp-inbound-1.mimecast.co.za", "mimecast"],
    ["mx1-us1.ppe-hosted.com", "proofpoint"],
    ["mxa-00123456.gslb.pphosted.com", "proofpoint"],
    ["d123456a.ess.barracudanetworks.com", "barracuda"],
    ["mx00.emig.gmx.net", "gmx-webde"],
    ["mx.zoho.eu", "zoho"],
    ["mx2.zoho.com.au", "zoho"],
    ["in1-smtp.messagingengine.com", "fastmail"],
    ["mx.yandex.net", "yandex"],
  ];
  for (const [host, id] of cases) assert.equal(providerOf(host)?.id, id, host);
});

Deno.test("providerOf ignores case and one trailing dot", () => {
  assert.equal(providerOf("ASPMX.L.Google.COM.")?.id, "google");
  assert.equal(providerOf("Contoso-com.MAIL.protection.outlook.com")?.id, "microsoft365");
});

Deno.test("providerOf matches on label boundaries only: lookalikes belong to nobody", () => {
  for (
    const host of [
      "mail.protection.outlook.com.attacker.example",
      "evilmail.protection.outlook.com",
      "protection.outlook.com",
      "outlook.com",
      "notgoogle.com",
      "google.com.evil.example",
      "mx2.yandex.net",
      "xmx.microsoft",
      "microsoft",
      "com",
      "",
      ".",
    ]
  ) {
    assert.equal(providerOf(host), null, JSON.stringify(host));
  }
});

Deno.test("a host equal to a suffix belongs to that suffix's provider", () => {
  assert.equal(providerOf("mx.yandex.net")?.id, "yandex");
  assert.equal(providerOf("mail.protection.outlook.com")?.id, "microsoft365");
});

Deno.test("where one provider's suffix lies inside another's, the longest suffix wins", () => {
  const catalog = parseCatalog(
    catalogOf(
      entry({ id: "parent", suffixes: ["example.net"] }),
      entry({ id: "child", suffixes: ["eu.example.net"] }),
      entry({ id: "grandchild", suffixes: ["mx.eu.example.net"] }),
    ),
    { file: "nested.json" },
  );
  assert.equal(catalog.providerOf("a.example.net")?.id, "parent");
  assert.equal(catalog.providerOf("example.net")?.id, "parent");
  assert.equal(catalog.providerOf("a.eu.example.net")?.id, "child");
  assert.equal(catalog.providerOf("eu.example.net")?.id, "child");
  assert.equal(catalog.providerOf("in1.mx.eu.example.net")?.id, "grandchild");
  assert.equal(catalog.providerOf("a.neu.example.net")?.id, "parent");
  assert.equal(catalog.providerOf("example.org"), null);
});

Deno.test("providerById finds built-in providers and nothing else", () => {
  assert.deepEqual(providerById("microsoft365")?.suffixes, [
    "mail.protection.outlook.com",
    "mx.microsoft",
  ]);
  assert.equal(providerById("Microsoft365"), null);
  assert.equal(providerById("office365"), null);
  assert.equal(providerById(""), null);
});

Deno.test("PROVIDER_IDS is the fixed list of catalog ids, in file order", () => {
  assert.deepEqual(PROVIDER_IDS, RAW.providers.map((provider: { id: string }) => provider.id));
  assert.ok(Object.isFrozen(PROVIDER_IDS));
  assert.ok(Object.isFrozen(BUILT_IN[0]));
  assert.ok(Object.isFrozen(BUILT_IN[0].suffixes));
});

Deno.test("the listing shows each provider's id, name, suffixes, source and date", () => {
  const text = formatProviderCatalog().join("\n");
  for (const provider of BUILT_IN) {
    assert.ok(text.includes(`${provider.id}: ${provider.name}`), provider.id);
    assert.ok(text.includes(`suffixes: ${provider.suffixes.join(", ")}`), provider.id);
    assert.ok(text.includes(`${provider.source} (checked ${provider.checked}`), provider.id);
  }
  const lines = formatProviderCatalog(
    parseCatalog(
      catalogOf(entry({ published: "2026-04-07", see_also: ["https://example.net/b"] })),
    ),
  );
  assert.deepEqual(lines, [
    "example: Example Mail",
    "  suffixes: mx.example.net",
    "  source:   https://example.net/mx (checked 2026-12-06, page dated 2026-04-07)",
    "  see also: https://example.net/b",
  ]);
});

Deno.test("a catalog with faults is refused with the file, the entry and the fix", () => {
  const refused: [unknown, RegExp][] = [
    [null, /^t\.json: top level: expected an object/],
    [{ version: 2, providers: [entry()] }, /^t\.json: version: expected 1, found 2$/],
    [{ version: 1, providers: [] }, /^t\.json: providers: expected a non-empty array/],
    [catalogOf("x"), /^t\.json: providers\[0\]: expected an object$/],
    [
      catalogOf(entry(), entry({ id: "second", suffixes: ["a.net", "mx.example.net"] })),
      /^t\.json: providers\[1\] \(second\): suffix "mx\.example\.net" is also claimed by "example"/,
    ],
    [catalogOf(entry({ id: "other" })), /id "other" is reserved: the metrics label .*another id/],
    [catalogOf(entry({ id: "none" })), /id "none" is reserved/],
    [
      catalogOf(entry(), entry({ suffixes: ["b.net"] })),
      /^t\.json: providers\[1\] \(example\): id "example" is used twice/,
    ],
    [
      catalogOf(entry({ id: "Example" })),
      /providers\[0\] \(Example\): id "Example" must be lower-case/,
    ],
    [catalogOf(entry({ id: "ex_ample" })), /id "ex_ample" must be lower-case/],
    [catalogOf(entry({ name: " " })), /name must be a non-empty string/],
    [catalogOf(entry({ suffixes: [] })), /suffixes must be a non-empty array/],
    [catalogOf(entry({ suffixes: "mx.example.net" })), /suffixes must be a non-empty array/],
    [
      catalogOf(entry({ suffixes: ["MX.example.net"] })),
      /suffix "MX\.example\.net" is not a lower-case host name/,
    ],
    [
      catalogOf(entry({ suffixes: [".example.net"] })),
      /suffix "\.example\.net" is not .* without a leading dot/,
    ],
    [
      catalogOf(entry({ suffixes: ["example.net."] })),
      /suffix "example\.net\." is not a lower-case host name/,
    ],
    [
      catalogOf(entry({ suffixes: ["net"] })),
      /suffix "net" is not a lower-case host name of two labels/,
    ],
    [catalogOf(entry({ suffixes: ["*.example.net"] })), /suffix "\*\.example\.net" is not/],
    [catalogOf(entry({ suffixes: ["a.net", "a.net"] })), /suffix "a\.net" is listed twice/],
    [
      catalogOf(entry({ source: "http://example.net/mx" })),
      /source "http:\/\/example\.net\/mx" must be an https URL/,
    ],
    [catalogOf(entry({ source: undefined })), /source undefined must be an https URL/],
    [
      catalogOf(entry({ checked: "2026-13-01" })),
      /checked "2026-13-01" must be a date, YYYY-MM-DD/,
    ],
    [catalogOf(entry({ checked: "6 Dec 2026" })), /checked "6 Dec 2026" must be a date/],
    [catalogOf(entry({ published: "2026-02-30" })), /published "2026-02-30" must be a date/],
    [
      catalogOf(entry({ see_also: ["ftp://example.net/x"] })),
      /see_also must be an array of https URLs/,
    ],
    [catalogOf(entry({ note: "" })), /note, when given, must be a non-empty string/],
    [
      catalogOf(entry({ suffix: ["mx.example.net"] })),
      /unknown key "suffix"; the keys are id, name, suffixes/,
    ],
  ];
  for (const [data, message] of refused) {
    assert.match(refusal(data, { file: "t.json" }), message);
  }
});

Deno.test("errors about the built-in catalog name its file", () => {
  assert.match(
    refusal({ version: 1, providers: [] }),
    /^lib\/routing\/providers\.json: providers: /,
  );
  assert.equal(CATALOG_FILE, "lib/routing/providers.json");
});

Deno.test("the built-in catalog is the file's data, validated", () => {
  const reparsed = parseCatalog(RAW);
  assert.deepEqual(reparsed.providers, BUILT_IN);
});
