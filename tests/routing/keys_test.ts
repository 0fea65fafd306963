import assert from "node:assert/strict";
import { domainFromKey, plainDomain } from "../../lib/routing/keys.ts";

Deno.test("the domain is what follows the last @, lower-cased, without trailing dot", () => {
  assert.deepEqual(domainFromKey("user@example.com"), { ok: true, value: "example.com" });
  assert.deepEqual(domainFromKey("User@Example.COM."), { ok: true, value: "example.com" });
  assert.deepEqual(domainFromKey("example.com"), { ok: true, value: "example.com" });
  assert.deepEqual(domainFromKey('"a@b c"@sub.example.org'), {
    ok: true,
    value: "sub.example.org",
  });
});

Deno.test("UTF-8 domains become their ASCII form", () => {
  assert.deepEqual(domainFromKey("jörg@Müller.example"), {
    ok: true,
    value: "xn--mller-kva.example",
  });
  assert.deepEqual(domainFromKey("bücher.example"), { ok: true, value: "xn--bcher-kva.example" });
  // IDNA's own case mapping, not JavaScript's: ΣΑΣ is σασ, where toLowerCase gives σας.
  assert.deepEqual(domainFromKey("u@example.ΣΑΣ"), { ok: true, value: "example.xn--mxa9ab" });
  assert.deepEqual(domainFromKey("u@BÜCHER.Example."), {
    ok: true,
    value: "xn--bcher-kva.example",
  });
});

Deno.test("keys that name no routable domain are refused without DNS", () => {
  for (
    const key of [
      "*",
      ".example.com",
      "user@.example.com",
      "user@[192.0.2.1]",
      "user@",
      "",
      "a..b.example",
      "user@-",
      "user@192.0.2.1",
      "user@exa mple.com",
      "user@" + "a".repeat(64) + ".example",
      "x@" + "abc.".repeat(70) + "com",
      "user@ex!ample.com",
    ]
  ) {
    const result = domainFromKey(key);
    assert.equal(result.ok, false, `expected ${JSON.stringify(key)} to be refused`);
  }
});

Deno.test("refusals say why", () => {
  assert.deepEqual(domainFromKey("*"), { ok: false, error: "wildcard key" });
  assert.deepEqual(domainFromKey("a@[192.0.2.1]"), { ok: false, error: "address literal" });
  assert.deepEqual(domainFromKey(".example.com"), { ok: false, error: "parent-domain key" });
  assert.deepEqual(domainFromKey("user@123"), {
    ok: false,
    error: "numeric top-level label (an IP address?)",
  });
});

Deno.test("single-label domains are domains like any other, looked up as absolute names", () => {
  // With append_dot_mydomain = no (Postfix's default) such recipients reach transport_maps, and
  // a top-level domain may have MX records; the original looked them up too.
  assert.deepEqual(domainFromKey("user@singlelabel"), { ok: true, value: "singlelabel" });
  assert.deepEqual(domainFromKey("user@LocalHost."), { ok: true, value: "localhost" });
});

Deno.test("plainDomain: lower case, one trailing dot dropped, the same key the cache uses", () => {
  assert.equal(plainDomain("Example.COM."), "example.com");
  assert.equal(plainDomain("example.com"), "example.com");
  assert.equal(plainDomain("a.."), "a.");
  assert.equal(plainDomain("."), "");
});
