/**
 * The real router process (main.ts with the compile task's permissions) over real sockets and a
 * fake DNS server: every row of the DNS outcome table, every key form, and Postfix's own client.
 */

import assert from "node:assert/strict";
import { postmapQuery } from "./support/postfix.ts";
import { GOOGLE, O365, postmapTest, RULES, startRouterFixture } from "./support/router_fixture.ts";
import { LineClient } from "./support/tcp_client.ts";
import type { FakeDnsBehaviour } from "./support/fake_dns.ts";

const NOT_FOUND = "500 NO%20RESULT";
const O365_REPLY = `200 ${O365}`;

const SOA_DATA = { mname: "a.root-servers.net", rname: "nstld.example", minimum: 86400 };
const MICROSOFT_MX = { preference: 10, exchange: "x.mail.protection.outlook.com" };

/**
 * Replies no honest server gives, each once taken for "no MX" (so the domain itself was matched):
 * each must defer. And one MX set with an exchange that is not a host name beside a Microsoft one.
 */
const HOSTILE_ZONE: Record<string, FakeDnsBehaviour> = {
  "chaos.test": {
    kind: "records",
    answers: [{ type: "MX", name: "chaos.test", class: "CH", data: MICROSOFT_MX }],
  },
  "flush.test": {
    kind: "records",
    answers: [{ type: "MX", name: "flush.test", flush: true, data: MICROSOFT_MX }],
  },
  "unrelated-soa.test": { kind: "nodata", soa: { ttl: 300, minimum: 60, zone: "example.org" } },
  "authority-a.test": {
    kind: "records",
    authorities: [{ type: "A", name: "other.test", data: "192.0.2.1" }],
  },
  "stranger-mx.test": {
    kind: "records",
    answers: [{ type: "MX", name: "other.test", data: MICROSOFT_MX }],
    authorities: [{ type: "SOA", name: ".", data: SOA_DATA }],
  },
  "bad-backup.test": {
    kind: "mx",
    records: [MICROSOFT_MX, { preference: 20, exchange: "backup mx.example" }],
  },
  "all-bad.test": { kind: "mx", records: [{ preference: 10, exchange: "bad host.example" }] },
};

/** Asks the router for every row of the DNS outcome table; `args` are its extra flags. */
async function assertOutcomeTable(args: string[]): Promise<void> {
  await using fixture = await startRouterFixture({ args });
  for (const [name, behaviour] of Object.entries(HOSTILE_ZONE)) {
    fixture.dns.setZone(name, behaviour);
  }
  const client = await LineClient.connect(fixture.router.port);
  try {
    const cases: [string, RegExp | string][] = [
      ["a@contoso.test", O365_REPLY], // MX, lowest preference first
      ["a@gmail.test", "200 smtp:[g1.example]:25,%20[g2.example]:25"], // result with a space
      ["a@other.test", NOT_FOUND], // MX, no rule matches
      ["a@lookalike.test", NOT_FOUND], // suffix: refuses the lookalike
      ["a@nullmx.test", NOT_FOUND], // null MX
      ["a@mail.implicit.test", "200 relay:[implicit.example]:25"], // NODATA: implicit MX
      ["a@plain.test", NOT_FOUND], // NODATA, no rule for the domain
      ["a@gone.test", NOT_FOUND], // NXDOMAIN
      ["a@servfail.test", /^400 SERVFAIL%20from%20127\.0\.0\.1:\d+$/],
      ["a@refused.test", /^400 REFUSED%20from%20127\.0\.0\.1:\d+$/],
      ["a@silent.test", /^400 no%20answer%20from%20127\.0\.0\.1:\d+/],
      ["a@truncated.test", O365_REPLY], // TC=1: asked again over TCP (--dns-tcp: at once)
      ["a@wrongid.test", /^400 /], // mismatched ID: ignored, never trusted
      ["a@wrongquestion.test", /^400 /], // mismatched question: ignored
      ["a@garbage.test", /^400 /], // malformed answer
      // Records the question does not account for: never "no MX".
      ["a@chaos.test", /^400 unexplained%20answer%20from%20127\.0\.0\.1:\d+/], // MX of class CH
      ["a@flush.test", /^400 unexplained%20answer%20/], // MX of class 0x8001 (mDNS flush bit)
      ["a@unrelated-soa.test", /^400 incomplete%20answer%20/], // SOA of example.org
      ["a@authority-a.test", /^400 incomplete%20answer%20/], // only an A record of another name
      ["a@stranger-mx.test", /^400 unexplained%20answer%20/], // MX of another name, root SOA
      // An exchange that is not a host name is skipped; the rest decide.
      ["a@bad-backup.test", O365_REPLY],
      ["a@all-bad.test", /^400 malformed%20answer%20/],
    ];
    for (const [key, expected] of cases) {
      const reply = await client.get(key);
      if (typeof expected === "string") assert.equal(reply, expected, key);
      else assert.match(reply ?? "null", expected, key);
    }
    const overTcp = args.includes("--dns-tcp");
    // Only the truncated answer goes over TCP without the flag; with it, nothing goes over UDP.
    assert.equal(fixture.dns.udpSources.length === 0, overTcp);
    assert.equal(/DNS servers \S+ over TCP/.test(fixture.router.stderr()), overTcp);
  } finally {
    client.close();
  }
}

Deno.test("every row of the DNS outcome table, through the real server", async () => {
  await assertOutcomeTable([]);
});

Deno.test("--dns-tcp: every row of the DNS outcome table, the same answers", async () => {
  await assertOutcomeTable(["--dns-tcp"]);
});

Deno.test("every key form, through the real server", async () => {
  await using fixture = await startRouterFixture();
  const client = await LineClient.connect(fixture.router.port);
  try {
    const cases: [string, string][] = [
      ["contoso.test", O365_REPLY], // bare domain
      ["USER@CONTOSO.TEST", O365_REPLY], // upper case
      ["user@contoso.test.", O365_REPLY], // trailing dot
      ["%22a%20b%22@contoso.test", O365_REPLY], // quoted local part with a space
      ["%22a@b%22@contoso.test", O365_REPLY], // the domain is after the LAST @
      ["j%C3%B6rg@m%C3%BCller.test", O365_REPLY], // UTF-8: looked up as xn--mller-kva.test
      ["*", NOT_FOUND],
      [".contoso.test", NOT_FOUND],
      ["user@[192.0.2.1]", NOT_FOUND],
      ["user@a..b.test", NOT_FOUND],
      ["user@bad_name!.test", NOT_FOUND],
      ["user@localhost", NOT_FOUND], // single-label: looked up, as the original did
    ];
    for (const [key, expected] of cases) assert.equal(await client.get(key), expected, key);
    // Only valid domains reached DNS; a single-label one is valid.
    assert.equal(fixture.dns.queriesFor("a..b.test"), 0);
    assert.equal(fixture.dns.queriesFor("localhost"), 1);
    assert.equal(fixture.dns.queriesFor("xn--mller-kva.test"), 1);
  } finally {
    client.close();
  }
});

Deno.test("a lookup never takes longer than --dns-timeout", async () => {
  await using fixture = await startRouterFixture();
  const client = await LineClient.connect(fixture.router.port);
  try {
    const started = performance.now();
    assert.match(await client.get("a@silent.test") ?? "", /^400 /);
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 600 + 250, `silent server answered 400 after ${elapsed} ms (budget 600)`);
    // Then the failure is cached: at once.
    const again = performance.now();
    assert.match(await client.get("b@silent.test") ?? "", /^400 /);
    assert.ok(performance.now() - again < 100);
  } finally {
    client.close();
  }
});

Deno.test("the start-up line names the address, the rule count and the DNS servers", async () => {
  await using fixture = await startRouterFixture();
  const log = fixture.router.stderr();
  assert.match(
    log,
    new RegExp(
      `listening on 127\\.0\\.0\\.1:${fixture.router.port} \\(tcp_table\\), 3 rules from ` +
        `${
          fixture.configPath.replaceAll(".", "\\.")
        }, DNS servers 127\\.0\\.0\\.1:${fixture.dns.port}`,
    ),
  );
});

postmapTest("postmap -q (Postfix's own client) gets the decoded answers", async (configDir) => {
  await using fixture = await startRouterFixture();
  const table = fixture.router.table;
  const found = await postmapQuery({ configDir, table, key: "someone@contoso.test" });
  assert.deepEqual([found.code, found.value], [0, O365]);
  const spaced = await postmapQuery({ configDir, table, key: "someone@gmail.test" });
  assert.deepEqual([spaced.code, spaced.value], [0, GOOGLE]);
  const utf8 = await postmapQuery({ configDir, table, key: "jörg@müller.test" });
  assert.deepEqual([utf8.code, utf8.value], [0, O365]);
  const missing = await postmapQuery({ configDir, table, key: "someone@other.test" });
  assert.deepEqual([missing.code, missing.value, missing.stderr], [1, null, ""]);
  const failed = await postmapQuery({ configDir, table, key: "someone@servfail.test" });
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /query error/);
});

Deno.test("a bad rules file: the router refuses to start, naming file and line", async () => {
  await assert.rejects(
    startRouterFixture({ rules: RULES + "/[unclosed/ relay:x\n" }),
    /rules\.conf, line 5: bad regular expression/,
  );
});

Deno.test("a file the original accepted starts, warning once per odd line", async () => {
  // A router that refuses to start makes Postfix defer all mail: the original skipped this line.
  await using fixture = await startRouterFixture({
    rules: RULES + "broken-line-without-result\nmx:microsoft relay:[x]:25\n",
  });
  const client = await LineClient.connect(fixture.router.port);
  try {
    assert.equal(await client.get("a@contoso.test"), O365_REPLY);
  } finally {
    client.close();
  }
  const log = fixture.router.stderr();
  assert.match(
    log,
    /rules\.conf, line 5: warning: pattern "broken-line-without-result" has no result/,
  );
  assert.match(log, /rules\.conf, line 6: warning: unknown pattern kind "mx:"/);
});
