/**
 * The man page, postfix-mx-pattern-router(8): it renders without a warning, and it documents
 * exactly the long flags `--help` lists, so neither can gain or lose a flag alone.
 *
 * @module
 */

import assert from "node:assert/strict";
import { HELP, USAGE } from "../lib/app/cli.ts";
import { isCi } from "./support/e2e_env.ts";
import { findBinary } from "./support/e2e_util.ts";

const MAN_PAGE = new URL("../man/postfix-mx-pattern-router.8", import.meta.url).pathname;
const GROFF = findBinary("groff");

/** The long flags (`--name`) a text mentions, sorted and without repeats. */
function longFlags(text: string): string[] {
  return [...new Set(text.match(/--[a-z][a-z0-9-]*/g) ?? [])].sort();
}

/** The man page's text as a reader sees it, as far as flags go: roff's `\-` is a plain `-`. */
async function manPageText(): Promise<string> {
  return (await Deno.readTextFile(MAN_PAGE)).replaceAll("\\-", "-");
}

Deno.test({
  name: "man page: groff -man -ww -z renders it without a warning",
  // Where groff is missing the test is skipped, except under CI, where it must run.
  ignore: GROFF === null && !isCi(),
  async fn() {
    assert.notEqual(GROFF, null, 'groff not found: install it with "apt-get install groff-base"');
    const { code, stdout, stderr } = await new Deno.Command(GROFF!, {
      args: ["-man", "-ww", "-z", MAN_PAGE],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const said = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    assert.equal(said, "", "groff printed warnings");
    assert.equal(code, 0);
  },
});

Deno.test("man page: every long flag of --help is documented, and no other", async () => {
  const inHelp = longFlags(HELP);
  const inManPage = longFlags(await manPageText());
  assert.ok(inHelp.includes("--config") && inHelp.includes("--strict"), "HELP read as expected");
  assert.deepEqual(
    inManPage.filter((flag) => !inHelp.includes(flag)),
    [],
    "flags in the man page that --help does not list",
  );
  assert.deepEqual(
    inHelp.filter((flag) => !inManPage.includes(flag)),
    [],
    "flags of --help missing from the man page",
  );
});

Deno.test("man page: each flag and subcommand has its own entry", async () => {
  const text = await manPageText();
  // An entry is a tagged paragraph whose tag starts with the flag (after its short form).
  const entries = [...text.matchAll(/^\.IP "(.*)"$/gm)].map((match) => match[1]);
  const entryFlags = new Set(entries.flatMap((tag) => longFlags(tag.split(" [")[0])));
  // The server's options: the lines of --help after the usage and before the subcommands.
  const serveFlags = longFlags(HELP.slice(USAGE.length, HELP.indexOf("Subcommands:")));
  assert.deepEqual(serveFlags.filter((flag) => !entryFlags.has(flag)), []);
  for (const command of ["check", "query"]) {
    assert.ok(
      entries.some((tag) => tag.startsWith(`\\fB${command}\\fR`)),
      `no entry for the ${command} command`,
    );
  }
});
