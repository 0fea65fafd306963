import assert from "node:assert/strict";
import { formatConfigError, parseConfig } from "../lib/config.ts";
import { regexHazard, worstMatchMs } from "../lib/regex_safety.ts";

Deno.test("catastrophic regexes are refused with the reason", () => {
  const refused: [string, RegExp][] = [
    ["(a+)+$", /repeat inside|contains a repeat/],
    ["(.*a){20}", /contains a repeat/],
    ["(?:mx\\d+\\.)+outlook", /contains a repeat/],
    ["(a|aa)*$", /has alternatives/],
    ["(?<x>.|a)+", /has alternatives/],
    ["(a)\\1", /backreferences/],
    ["(?<n>a)\\k<n>", /backreferences/],
    ["a*b*c*", /3 unbounded repeats/],
    [".*a.*b.*c$", /3 unbounded repeats/],
    [".*a.*b$", /2 unbounded repeats/],
    ["^(.*)\\.(.*)\\.com$", /2 unbounded repeats/],
  ];
  for (const [source, reason] of refused) {
    assert.match(regexHazard(source) ?? "allowed", reason, source);
  }
});

Deno.test("ordinary MX regexes are allowed", () => {
  for (
    const source of [
      "^mx\\d+\\.mail\\.icloud\\.com$",
      "\\.mail\\.protection\\.outlook\\.com$",
      "(mail|mx)\\d+\\.example\\.com",
      "[(|)]+x",
      "a{2}b{1,3}",
      "^[^.]*\\.example\\.com$",
      "x{",
    ]
  ) {
    assert.equal(regexHazard(source), null, source);
  }
});

Deno.test("the config refuses an unsafe regex with file and line", () => {
  const parsed = parseConfig("suffix:ok.example relay:a\n/(a+)+$/ relay:b\n", "r.conf");
  assert.equal(parsed.ok, false);
  if (!parsed.ok) {
    assert.match(
      formatConfigError(parsed.errors[0]),
      /^r\.conf, line 2: unsafe regular expression \/\(a\+\)\+\$\//,
    );
  }
});

Deno.test("the worst allowed shape stays bounded on hostile 253-character names", () => {
  // One unbounded repeat, unanchored: the costliest shape the static check lets through.
  assert.equal(regexHazard("[a-z.-]+\\.outlook\\.com$"), null, "the check allows it");
  const worst = worstMatchMs(/[a-z.-]+\.outlook\.com$/i);
  // About 0.4 ms here; a catastrophic shape takes seconds.
  assert.ok(worst < 100, `worst case ${worst} ms`);
  assert.ok(worstMatchMs(/^mx\d+\.mail\.icloud\.com$/i) < worst);
});
