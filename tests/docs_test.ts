/**
 * The documents say what the code does: the README stays short and free of development history,
 * its `deno run` wrapper carries exactly the compile task's permissions, every flag it names
 * exists, and every file, link and section the README, docs/, the man page and the systemd files
 * point at is there.
 *
 * @module
 */

import assert from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";
import { HELP, SERVE_FLAGS } from "../lib/app/cli.ts";

const ROOT = normalize(new URL("..", import.meta.url).pathname);

/** The most lines README.md may have: it is for mail admins, and the depth lives in docs/. */
const README_MAX_LINES = 320;

/** Words that tell the project's history instead of what the program does. */
const HISTORY =
  /\b(earlier version|previously|no longer(?! than)|this session|commit [0-9a-f]{7,40})\b/i;

/** A commit hash: 7 to 40 hex digits with at least one digit and one letter. */
const COMMIT_HASH = /\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b/;

/** Folders of the repository whose paths the documents name. */
const REPO_PATH =
  /(?<![\w./-])((?:tests|lib|bench|docs|man|systemd|grafana)\/[\w./-]*[\w/])(?![\w*])/g;

/** `deno run` flags the README's wrapper needs beside the compile task's. */
const DENO_RUN_ONLY_FLAGS = ["--cached-only"];

/** Flags of other programs in the README's commands (`systemctl enable --now`). */
const OTHER_PROGRAMS_FLAGS = ["--now"];

function read(path: string): string {
  return Deno.readTextFileSync(join(ROOT, path));
}

function docsFiles(): string[] {
  return [...Deno.readDirSync(join(ROOT, "docs"))]
    .filter((entry) => entry.isFile && entry.name.endsWith(".md"))
    .map((entry) => `docs/${entry.name}`)
    .sort();
}

/** The README, docs/ and the man page: what admins and contributors read. */
function documents(): string[] {
  return ["README.md", ...docsFiles(), "man/postfix-mx-pattern-router.8"];
}

function exists(path: string): boolean {
  try {
    Deno.statSync(join(ROOT, path));
    return true;
  } catch {
    return false;
  }
}

/** Paths .gitignore names from the root (`/bench/results.json`): made by runs, not in a clone. */
function ignoredPaths(): string[] {
  return read(".gitignore").split("\n")
    .filter((line) => line.startsWith("/") && !line.includes("*"))
    .map((line) => line.slice(1));
}

/** Markdown without its fenced code blocks (whose `#` lines are no headings). */
function prose(markdown: string): string {
  return markdown.replace(/^```[^\n]*\n[\s\S]*?^```$/gm, "");
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
function anchorOf(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, "").replace(/ /g, "-");
}

function anchorsOf(markdown: string): Set<string> {
  return new Set(
    [...prose(markdown).matchAll(/^#{1,6} (.+)$/gm)].map((match) => anchorOf(match[1])),
  );
}

/** The long flags (`--name`) a text mentions. */
function longFlags(text: string): string[] {
  return [...new Set(text.match(/(?<![\w-])--[a-z][a-z0-9-]*/g) ?? [])].sort();
}

/** The flags of a command line, `--name=value` or `--name`, in order. */
function commandFlags(command: string): string[] {
  return command.split(/\s+/).filter((word) => word.startsWith("--"));
}

/** The compile task's flags, as deno.json has them, without its output path. */
function compileTaskFlags(): string[] {
  const tasks = JSON.parse(read("deno.json")).tasks as Record<string, string>;
  return commandFlags(tasks.compile).filter((flag) => flag !== "--output");
}

Deno.test("README.md has at most 320 lines", () => {
  const lines = read("README.md").split("\n").length - 1;
  assert.ok(
    lines <= README_MAX_LINES,
    `README.md has ${lines} lines, over ${README_MAX_LINES}: move the depth to docs/`,
  );
});

Deno.test("README, docs and the man page tell no development history and no commit hashes", () => {
  const found: string[] = [];
  for (const path of documents()) {
    read(path).split("\n").forEach((line, index) => {
      const history = HISTORY.exec(line) ?? COMMIT_HASH.exec(line);
      if (history !== null) found.push(`${path}:${index + 1}: "${history[0]}"`);
    });
  }
  assert.deepEqual(found, [], "say what the program does, not how it came to do it");
});

Deno.test("README.md shows how to start the router and run the tests", () => {
  const readme = read("README.md");
  assert.match(readme, /npx -y deno@2\.9\.6 task start/);
  assert.match(readme, /npx -y deno@2\.9\.6 task test/);
});

Deno.test("README.md's deno run wrapper has exactly the compile task's permissions", () => {
  const wrapper = /^exec deno run ([\s\S]*?)\/\S*main\.ts "\$@"$/m.exec(read("README.md"));
  assert.ok(wrapper !== null, 'README.md: no "exec deno run ... main.ts "$@"" wrapper');
  const flags = commandFlags(wrapper[1].replaceAll("\\\n", " "))
    .filter((flag) => !DENO_RUN_ONLY_FLAGS.includes(flag));
  assert.deepEqual(flags, compileTaskFlags());
});

Deno.test("every --flag README.md names is the router's, a subcommand's or Deno's", () => {
  const known = new Set([
    ...SERVE_FLAGS.map((flag) => `--${flag.name}`),
    ...longFlags(HELP),
    ...longFlags(Object.values(JSON.parse(read("deno.json")).tasks).join(" ")),
    ...DENO_RUN_ONLY_FLAGS,
    ...OTHER_PROGRAMS_FLAGS,
  ]);
  const unknown = longFlags(read("README.md")).filter((flag) => !known.has(flag));
  assert.deepEqual(unknown, [], "README.md names flags the router does not have");
});

Deno.test("every repository path the documents and systemd files name exists", () => {
  const ignored = ignoredPaths();
  const sources = [...documents(), "postfix-mx-pattern-router.conf.example"];
  for (const entry of Deno.readDirSync(join(ROOT, "systemd"))) {
    sources.push(`systemd/${entry.name}`);
  }
  const missing: string[] = [];
  for (const source of sources) {
    const text = read(source).replaceAll("\\-", "-");
    for (const [, path] of text.matchAll(REPO_PATH)) {
      const clean = path.replace(/\.$/, "");
      if (ignored.some((prefix) => clean.startsWith(prefix))) continue;
      if (!exists(clean)) missing.push(`${source}: ${clean}`);
    }
  }
  assert.deepEqual(missing, [], "paths named in the documents that the repository lacks");
});

Deno.test("every relative link of README.md and docs/ reaches a file and its section", () => {
  const broken: string[] = [];
  for (const source of ["README.md", ...docsFiles()]) {
    const text = prose(read(source));
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target)) continue;
      const [file, anchor] = target.split("#");
      const path = file === "" ? source : relative(ROOT, join(ROOT, dirname(source), file));
      if (!exists(path)) {
        broken.push(`${source}: ${target} (no ${path})`);
        continue;
      }
      if (anchor !== undefined && !anchorsOf(read(path)).has(anchor)) {
        broken.push(`${source}: ${target} (no such section in ${path})`);
      }
    }
  }
  assert.deepEqual(broken, []);
});

Deno.test('references like docs/reliability.md, "The systemd unit" name an existing section', () => {
  const broken: string[] = [];
  const sources = [...documents()];
  for (const entry of Deno.readDirSync(join(ROOT, "systemd"))) {
    sources.push(`systemd/${entry.name}`);
  }
  for (const source of sources) {
    const text = read(source).replaceAll("\\-", "-").replace(/\n#\s*/g, " ");
    for (const [, file, section] of text.matchAll(/((?:docs\/)?[\w-]+\.md), "([^"]+)"/g)) {
      const path = file.includes("/") || file === "README.md" ? file : `docs/${file}`;
      if (!exists(path) || !anchorsOf(read(path)).has(anchorOf(section))) {
        broken.push(`${source}: ${file}, "${section}"`);
      }
    }
  }
  assert.deepEqual(broken, []);
});

Deno.test("the checks above catch what they are for", () => {
  assert.ok(HISTORY.test("as an earlier version did") && HISTORY.test("No longer needed"));
  assert.ok(!HISTORY.test("cached no longer than its TTL"));
  assert.ok(COMMIT_HASH.test("fixed in 6eb6211") && !COMMIT_HASH.test("decade 1000000"));
  assert.deepEqual(
    [..."see tests/dns/resolver_test.ts, /var/lib/postfix/x and lib/dns*.ts.".matchAll(REPO_PATH)]
      .map((match) => match[1]),
    ["tests/dns/resolver_test.ts"],
  );
  assert.equal(anchorOf("DNS over TCP (`--dns-tcp`)"), "dns-over-tcp---dns-tcp");
  assert.deepEqual([...anchorsOf("# A\n```sh\n# not a heading\n```\n## B c\n")], ["a", "b-c"]);
  assert.deepEqual(longFlags("run --dry-run, not x--y or ---z"), ["--dry-run"]);
});
