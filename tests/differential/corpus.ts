/**
 * The differential corpus: rules files, recipient keys, and what the original Python router
 * answered for each, beside what ours answers where it differs on purpose.
 *
 * The original's answers come from its README (../shared/original-readme.md) and from its
 * observed behaviour (../shared/postfix-facts.md, last section). Where a row needed a step of
 * reasoning beyond those, its note says so. How the original treats our extensions: a line
 * `suffix:x`, `exact:x`, `domain:x`, `pool:x` or `/x/` is to it a plain substring pattern with a
 * `:` or `/` in it, which no host name contains, so the line never matches.
 *
 * Answers are written as the test observes them on a raw tcp_table connection:
 * `200 RESULT` (the result decoded), `500`, `400`; ` +close` when the server closed the
 * connection after the reply, ` +extra` when it sent more reply lines than requests.
 *
 * @module
 */

/**
 * Every difference from the original the corpus may show, by id: each must be described in the
 * README's "Differences from the original" with the marker `(diff: ID)`.
 */
export const DIFFERENCES = {
  "bare-domain":
    "a key without @ is looked up as a domain (the original answers 500); Postfix never sends one",
  "quoted-at":
    'a quoted local part holding @ ("a@b"@example.com): ours uses what follows the last @',
  "dns-failure": "SERVFAIL, REFUSED and other error codes answer 400 (the original: 500, cached)",
  "unexplained-answer":
    "an answer we cannot account for (foreign class, unrelated SOA or records, " +
    "CNAME loop, garbage) answers 400 (the original: 500, cached)",
  "timeout-closes":
    "on a DNS timeout both answer 400; the original also closes the connection, ours keeps it",
  "invalid-name":
    "a domain with an empty label or a label over 63 bytes: ours 500 without DNS; the original " +
    "400 and closes the connection",
  "invalid-mx-host": "MX exchange names that are no host names are skipped; when none is left " +
    "ours answers 400 (the original matched them as text)",
  "mx-order": "MX hosts are tried lowest preference first (the original: in DNS answer order)",
  "mx-host-limit": "only the 16 lowest-preference MX hosts are matched (the original: all)",
  "long-key": "a key over 1024 bytes gets one answer (the original answered twice, and every " +
    "later answer on the connection belonged to the request before it)",
  "bom-stripped": "a UTF-8 BOM at the start of the rules file is ignored (the original kept it " +
    "in the first pattern, so that rule never matched)",
  "new-rule-kinds": "suffix:, exact:, /regex/, domain: and pool: lines, which the original reads " +
    "as substrings that never match",
} as const satisfies Record<string, string>;

/** A difference id of {@linkcode DIFFERENCES}. */
export type DifferenceId = keyof typeof DIFFERENCES;

/** One recipient key of the corpus. */
export interface Row {
  /** The key as Postfix looks it up, decoded (the test %-encodes it as Postfix does). */
  key: string;
  /** What the original answers. */
  original: string;
  /** What ours answers, when it differs on purpose; with {@linkcode Row.diff}. */
  ours?: string;
  /** Why it differs: ids of {@linkcode DIFFERENCES}. */
  diff?: DifferenceId[];
  /** How the original's answer was derived, when neither source states it. */
  note?: string;
  /** The key's domain must reach no DNS server (a domain: rule answers it). */
  noDns?: boolean;
}

/** A rules file and the keys asked of a router started with it. */
export interface CorpusConfig {
  /** The rules file's text. */
  rules: string;
  /** Extra router arguments. */
  args?: string[];
  /** "silent": the router's DNS server never answers. Default: the fake zone. */
  dns?: "zone" | "silent";
  rows: Row[];
}

/** A row where both answer the same. */
function same(key: string, answer: string, note?: string): Row {
  return { key, original: answer, note };
}

/** A row where ours answers differently on purpose. */
function differs(
  key: string,
  answers: { original: string; ours: string; note?: string; noDns?: boolean },
  ...diff: DifferenceId[]
): Row {
  return { key, ...answers, diff };
}

/** The README's relay result for Microsoft 365. */
export const O365 = "relay:[office365-relay.example.com]:587";
/** The README's relay result for iCloud. */
export const ICLOUD = "relay:[icloud-relay.example.com]:587";
const O = `200 ${O365}`;
const I = `200 ${ICLOUD}`;

/** The original README's example configuration, as printed there. */
export const README_RULES = `protection.outlook.com    relay:[office365-relay.example.com]:587
mx.microsoft              relay:[office365-relay.example.com]:587
icloud.com                relay:[icloud-relay.example.com]:587
`;

const DNSPYTHON_CHAIN = "derived: dnspython follows at most 16 CNAMEs, then drops the server " +
  '("no nameservers": 500)';
const DNSPYTHON_NO_ANSWER = "derived: dnspython finds no IN MX set of the name (NoAnswer): 500";
const TIMEOUT = "400 +close";

/**
 * The same lookup under every key form Postfix may send: upper case, a trailing dot, a quoted
 * local part. A bare domain (no @) the original answers 500 without a lookup; ours looks it up.
 */
function keyForms(row: Row): Row[] {
  const domain = row.key.slice("user@".length);
  const ours = (row.ours ?? row.original).replace(" +close", "");
  return [
    { ...row, key: `First.Last@${domain.toUpperCase()}` },
    { ...row, key: `user@${domain}.` },
    { ...row, key: `"first last"@${domain}` },
    ours === "500"
      ? same(domain, "500")
      : differs(domain, { original: "500", ours }, "bare-domain"),
  ];
}

/** Keys of the README config; asked over UDP and again with --dns-tcp. */
const README_ROWS: Row[] = [
  // MX hosts the rules match, and hosts they do not.
  same("user@o365.test", O),
  same("user@hotmail.test", O),
  same("user@mxms.test", O),
  same("user@icloud.test", I),
  same("user@lookalike.test", O, "a plain substring also matches a lookalike host, in both"),
  same("user@gmail.test", "500"),
  same("user@own.test", "500"),
  same("user@dup-protection.test", "500"),
  // Several MX hosts: every host can match; the order decides between rules.
  same("user@backup-ms.test", O, "MX 10 its own, MX 20 at Microsoft"),
  same("user@primary-ms.test", O),
  same("user@order-same.test", I, "answer order = preference order"),
  differs("user@order-reversed.test", { original: O, ours: I }, "mx-order"),
  same("user@order-tie.test", O, "equal preferences keep the answer order"),
  same("user@order-reversed-same.test", O),
  same("user@many-mx-early.test", O),
  differs("user@many-mx-late.test", { original: O, ours: "500" }, "mx-host-limit"),
  // Null MX, NODATA (part 4: the domain name itself never matches a substring), NXDOMAIN.
  same("user@nullmx.test", "500"),
  same("user@nullmx-mixed.test", O, "a null MX beside a real one"),
  same("user@nodata-soa.test", "500"),
  same("user@nodata-empty.test", "500", "NODATA as dnsmasq sends it: no records at all"),
  same("user@fanicloud.com", "500"),
  same("user@protection.outlook.com.nomx.test", "500"),
  same("user@mx.microsoft.nomx.test", "500"),
  same("user@gone.test", "500"),
  same("user@no-such-domain.test", "500"),
  same("user@protection.outlook.com.gone.test", "500"),
  // Failures.
  differs("user@servfail.test", { original: "500", ours: "400" }, "dns-failure"),
  differs("user@refused.test", { original: "500", ours: "400" }, "dns-failure"),
  differs("user@notimp.test", { original: "500", ours: "400" }, "dns-failure"),
  differs("user@silent.test", { original: TIMEOUT, ours: "400" }, "timeout-closes"),
  differs("user@garbage.test", { original: "500", ours: "400" }, "unexplained-answer"),
  same("user@truncated.test", O, "TC bit: asked again over TCP"),
  same("user@slow.test", O),
  // CNAME chains.
  same("user@alias.test", O),
  same("user@alias2.test", O),
  same("user@alias-five.test", O),
  same("user@alias-ten.test", O, "dnspython follows up to 16 CNAMEs, as we do"),
  same("user@alias-icloud.test", I),
  same("user@alias-nx.test", "500"),
  same("user@alias-nodata.test", "500"),
  same("user@alias-fanicloud.test", "500"),
  differs("user@alias-servfail.test", { original: "500", ours: "400" }, "dns-failure"),
  differs(
    "user@alias-loop.test",
    { original: "500", ours: "400", note: DNSPYTHON_CHAIN },
    "unexplained-answer",
  ),
  // Part 2: answers nobody can account for.
  ...["class-ch", "flush-bit", "foreign-soa", "authority-a", "other-mx-root-soa"].map((name) =>
    differs(
      `user@${name}.test`,
      { original: "500", ours: "400", note: DNSPYTHON_NO_ANSWER },
      "unexplained-answer",
    )
  ),
  // Part 3: an exchange name that is no host name.
  same("user@bad-exchange.test", O),
  same("user@bad-exchange-first.test", O),
  same("user@bad-exchange-other.test", "500"),
  differs("user@bad-exchange-only.test", { original: "500", ours: "400" }, "invalid-mx-host"),
  differs(
    "user@bad-exchange-lookalike.test",
    {
      original: O,
      ours: "400",
      note: "derived: dnspython writes the name as backup\\032protection.outlook.com., " +
        "which holds the pattern",
    },
    "invalid-mx-host",
  ),
  same("user@bad-bytes.test", O),
  // Part 5: single-label domains are looked up.
  same("user@singlelabel", O),
  same("User@SingleLabel.", O),
  same("user@bareword", "500"),
  same("user@nosuchtld", "500"),
  // Key forms, for one domain of each outcome.
  ...[
    same("user@o365.test", O),
    same("user@mxms.test", O),
    same("user@icloud.test", I),
    same("user@gmail.test", "500"),
    same("user@nullmx.test", "500"),
    same("user@nodata-soa.test", "500"),
    same("user@fanicloud.com", "500"),
    same("user@gone.test", "500"),
    differs("user@servfail.test", { original: "500", ours: "400" }, "dns-failure"),
    differs("user@refused.test", { original: "500", ours: "400" }, "dns-failure"),
    differs("user@silent.test", { original: TIMEOUT, ours: "400" }, "timeout-closes"),
    same("user@alias.test", O),
    differs(
      "user@class-ch.test",
      { original: "500", ours: "400", note: DNSPYTHON_NO_ANSWER },
      "unexplained-answer",
    ),
    same("user@bad-exchange.test", O),
    differs("user@order-reversed.test", { original: O, ours: I }, "mx-order"),
    same("user@singlelabel", O),
  ].flatMap(keyForms),
  same("*", "500"),
  same(".o365.test", "500"),
  same("user@[192.0.2.1]", "500", "derived: dnspython asks for the name; the zone has none"),
  same("user@[IPv6:2001:db8::1]", "500", "derived: as above"),
  same("localhost", "500"),
  same('"a b"@o365.test', O),
  differs('"a@b"@o365.test', { original: "500", ours: O }, "quoted-at"),
  same('"a@b"@gmail.test', "500"),
  same("jörg@müller.test", O, "derived: the observed run shows no difference for UTF-8 keys"),
  same("user@xn--mller-kva.test", O),
  same("USER@O365.TEST", O),
  same("User@Icloud.Test.", I),
  same("user+tag@o365.test", O),
  same(`${"a".repeat(1000)}@o365.test`, O, "a request line of 1015 bytes: within 1024"),
  differs(
    `${"a".repeat(1200)}@o365.test`,
    {
      original: "500 +extra",
      ours: O,
      note: "derived: its first 1024 bytes hold no @ (500), the rest is a second request",
    },
    "long-key",
  ),
  differs("user@a..o365.test", { original: TIMEOUT, ours: "500" }, "invalid-name"),
  differs(`user@${"x".repeat(64)}.test`, { original: TIMEOUT, ours: "500" }, "invalid-name"),
  same("user@bad_name!.test", "500", "derived: dnspython asks for the name; the zone has none"),
  same("user@123.45", "500", "derived: as above"),
];

/** Rules with domain overrides (issue 16 part 1) among the README's rules. */
const OVERRIDE_RULES = `# an MX rule first: domain rules win wherever they stand
protection.outlook.com relay:[office365-relay.example.com]:587
domain:contoso-ov.test smtp:[override-b.example]:25
domain:.sub-ov.test DUNNO
domain:.a.sub-ov.test smtp:[nearest.example]:25
domain:exact.sub-ov.test smtp:[exact.example]:25
domain:dunno-ov.test dunno
domain:bücher-ov.test smtp:[idn.example]:25
domain:xn--mller-ov-65a.test smtp:[alabel.example]:25
domain:Upper-OV.Test. smtp:[upper.example]:25
domain:down-ov.test smtp:[dns-down.example]:25
domain:silent-ov.test smtp:[dns-silent.example]:25
domain:pooled-ov.test pool:solo
pool:solo 1 relay:[solo.example]:25
mx.microsoft relay:[office365-relay.example.com]:587
icloud.com relay:[icloud-relay.example.com]:587
`;

/** An override answer, with the domain never asked of DNS. */
function override(key: string, original: string, ours: string, note?: string): Row {
  return differs(key, { original, ours, note, noDns: true }, "new-rule-kinds");
}

const OVERRIDE_ROWS: Row[] = [
  override("user@contoso-ov.test", O, "200 smtp:[override-b.example]:25"),
  override("USER@Contoso-OV.Test.", O, "200 smtp:[override-b.example]:25"),
  differs(
    "contoso-ov.test",
    {
      original: "500",
      ours: "200 smtp:[override-b.example]:25",
      noDns: true,
    },
    "bare-domain",
    "new-rule-kinds",
  ),
  same(".contoso-ov.test", "500"),
  same("user@www.contoso-ov.test", "500", "domain:NAME is the name only; the zone has no www"),
  same("user@sub-ov.test", O, "domain:.NAME is the subdomains only"),
  override("user@x.sub-ov.test", O, "500", "DUNNO: not found, Postfix goes on"),
  override("user@deep.x.sub-ov.test", O, "500"),
  override("user@a.sub-ov.test", O, "500", ".a.sub-ov.test is its subdomains, .sub-ov.test wins"),
  override("user@y.a.sub-ov.test", O, "200 smtp:[nearest.example]:25", "the nearest parent"),
  override("user@exact.sub-ov.test", "500", "200 smtp:[exact.example]:25", "the exact name first"),
  override("user@dunno-ov.test", O, "500"),
  override("user@bücher-ov.test", "500", "200 smtp:[idn.example]:25"),
  override("user@xn--bcher-ov-65a.test", "500", "200 smtp:[idn.example]:25"),
  override("user@müller-ov.test", "500", "200 smtp:[alabel.example]:25"),
  override("user@upper-ov.test", "500", "200 smtp:[upper.example]:25"),
  override("user@down-ov.test", "500", "200 smtp:[dns-down.example]:25", "its DNS: SERVFAIL"),
  override("user@silent-ov.test", TIMEOUT, "200 smtp:[dns-silent.example]:25"),
  override("user@pooled-ov.test", "500", "200 relay:[solo.example]:25"),
  same("user@o365.test", O),
  same("user@mxms.test", O),
  same("user@gmail.test", "500"),
  same("user@[192.0.2.1]", "500"),
  same("*", "500"),
];

/** The same overrides with a DNS server that never answers: they still answer, at once. */
const SILENT_DNS_ROWS: Row[] = [
  override("user@contoso-ov.test", TIMEOUT, "200 smtp:[override-b.example]:25"),
  override("user@x.sub-ov.test", TIMEOUT, "500"),
  override("user@pooled-ov.test", TIMEOUT, "200 relay:[solo.example]:25"),
  differs("user@o365.test", { original: TIMEOUT, ours: "400" }, "timeout-closes"),
];

const EXTENSION_RULES = `suffix:mail.protection.outlook.com relay:[office365-relay.example.com]:587
exact:mxms-test.k-v1.mx.microsoft relay:[office365-relay.example.com]:587
/^mx[0-9]+\\.mail\\.icloud\\.com$/ relay:[icloud-relay.example.com]:587
exact:implicit-exact.test relay:[implicit.example]:25
suffix:implicit-suffix.test relay:[implicit.example]:25
/icloud/ relay:[regex.example]:25
suffix:google.com pool:solo
pool:solo 1 relay:[solo.example]:25
`;

const extension = (key: string, original: string, ours: string, note?: string): Row =>
  differs(key, { original, ours, note }, "new-rule-kinds");

const EXTENSION_ROWS: Row[] = [
  extension("user@o365.test", "500", O),
  same("user@lookalike.test", "500", "suffix: refuses the lookalike"),
  extension("user@mxms.test", "500", O),
  extension("user@icloud.test", "500", I),
  extension("user@regexhost.test", "500", "200 relay:[regex.example]:25"),
  extension("user@implicit-exact.test", "500", "200 relay:[implicit.example]:25", "NODATA"),
  extension("user@implicit-suffix.test", "500", "200 relay:[implicit.example]:25", "NODATA"),
  extension("user@a.implicit-suffix.test", "500", "200 relay:[implicit.example]:25", "NODATA"),
  same("user@myicloud.test", "500", "NODATA: a regex never matches the domain name"),
  same("user@fanicloud.com", "500"),
  extension("user@gmail.test", "500", "200 relay:[solo.example]:25"),
  extension("user@order-reversed.test", "500", I),
  same("user@own.test", "500"),
  same("user@nullmx.test", "500"),
  differs("user@servfail.test", { original: "500", ours: "400" }, "dns-failure"),
];

/** Every rules file of the corpus, by name. */
export const CORPUS: Record<string, CorpusConfig> = {
  "readme": { rules: README_RULES, rows: README_ROWS },
  "readme --dns-tcp": { rules: README_RULES, args: ["--dns-tcp"], rows: README_ROWS },
  "overrides": { rules: OVERRIDE_RULES, rows: OVERRIDE_ROWS },
  "overrides, DNS silent": { rules: OVERRIDE_RULES, dns: "silent", rows: SILENT_DNS_ROWS },
  "extensions": { rules: EXTENSION_RULES, rows: EXTENSION_ROWS },
  "suffix forms": {
    rules: `suffix:.icloud.com ${ICLOUD}\nsuffix:*.outlook.com ${O365}\n`,
    rows: [
      extension("user@icloud.test", "500", I, "suffix:.icloud.com reads as suffix:icloud.com"),
      extension("user@o365.test", "500", O, "suffix:*.outlook.com reads as suffix:outlook.com"),
      same("user@lookalike.test", "500"),
      same("user@gmail.test", "500"),
    ],
  },
  // Issue 16 part 6: configs the original accepts, one oddity each.
  "one-word line": {
    rules: `protection.outlook.com\nmx.microsoft ${O365}\nicloud.com ${ICLOUD}\n`,
    rows: [
      same("user@o365.test", "500", "the one-word line is skipped"),
      same("user@mxms.test", O),
      same("user@icloud.test", I),
    ],
  },
  "pool without pool": {
    rules: `protection.outlook.com pool:relays\nicloud.com ${ICLOUD}\n`,
    rows: [
      same("user@o365.test", "200 pool:relays", "a transport named pool"),
      same("user@icloud.test", I),
      same("user@gmail.test", "500"),
    ],
  },
  "unknown prefix": {
    rules: `mx:microsoft ${O365}\nicloud.com ${ICLOUD}\n`,
    rows: [
      same("user@mxms.test", "500", "mx:microsoft is a substring no host name holds"),
      same("user@o365.test", "500"),
      same("user@icloud.test", I),
    ],
  },
  "duplicate patterns": {
    rules: "outlook.com relay:[first.example]:587\nprotection relay:[protection.example]:587\n" +
      "outlook.com relay:[last.example]:587\n",
    rows: [
      same("user@o365.test", "200 relay:[last.example]:587", "the last result, the first position"),
      same("user@dup-protection.test", "200 relay:[protection.example]:587"),
      same("user@gmail.test", "500"),
    ],
  },
  "comment after result": {
    rules: `protection.outlook.com ${O365} # Office 365\nicloud.com ${ICLOUD}\n`,
    rows: [
      same("user@o365.test", `${O} # Office 365`, "Postfix has no trailing comments"),
      same("user@icloud.test", I),
    ],
  },
  "byte order mark": {
    rules: `\uFEFFprotection.outlook.com ${O365}\nicloud.com ${ICLOUD}\n`,
    rows: [
      differs("user@o365.test", { original: "500", ours: O }, "bom-stripped"),
      differs("user@hotmail.test", { original: "500", ours: O }, "bom-stripped"),
      same("user@icloud.test", I),
    ],
  },
};
