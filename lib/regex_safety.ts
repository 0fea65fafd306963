/**
 * Keeps `/regex/` rules from backtracking catastrophically. The recipient domain's owner chooses
 * its MX names, so a rule like `/(a+)+$/` would let anyone stall the router (and Postfix behind
 * it) with one crafted MX record.
 *
 * A static check refuses the constructions that backtrack exponentially or with a high
 * polynomial degree: a repeat inside a repeat (`(a+)+`), alternatives inside a repeat
 * (`(a|aa)*`), backreferences, and more than {@linkcode MAX_UNBOUNDED_REPEATS} unbounded repeats.
 * What is left costs at most O(n^2) on an n-character name (n ≤ 253; an unanchored search adds
 * one factor to the single repeat); {@linkcode worstMatchMs} measures it on hostile names for
 * `check` to report. The
 * check is static on purpose: a file must not be valid on an idle machine and invalid on a busy
 * one.
 *
 * @module
 */

/** The most unbounded repeats (`*`, `+`, `{n,}`) one regex may have: cost is O(n^repeats). */
export const MAX_UNBOUNDED_REPEATS = 1;
/** The longest name a match ever sees: MX hosts are valid DNS names. */
export const MAX_NAME = 253;

interface Group {
  hasRepeat: boolean;
  hasAlternation: boolean;
}

/**
 * Returns why a regex source is unsafe to run on attacker-chosen names, or null.
 *
 * @example
 * ```ts
 * regexHazard("(a+)+$"); // "a repeated group contains a repeat ..."
 * regexHazard("^mx\\d+\\.mail\\.icloud\\.com$"); // null
 * ```
 */
export function regexHazard(source: string): string | null {
  const stack: Group[] = [{ hasRepeat: false, hasAlternation: false }];
  let unbounded = 0;
  let i = 0;
  // What the next quantifier applies to: a group just closed (with its repeat flag), or an atom.
  let lastAtomGroup: Group | null = null;
  while (i < source.length) {
    const c = source[i];
    if (c === "\\") {
      const next = source[i + 1] ?? "";
      if (/[1-9]/.test(next) || (next === "k" && source[i + 2] === "<")) {
        return "backreferences can backtrack exponentially; rewrite without them";
      }
      i += 2;
      lastAtomGroup = null;
    } else if (c === "[") {
      i = skipClass(source, i);
      lastAtomGroup = null;
    } else if (c === "(") {
      stack.push({ hasRepeat: false, hasAlternation: false });
      i += source[i + 1] === "?" ? groupPrefixLength(source, i) : 1;
      lastAtomGroup = null;
    } else if (c === ")") {
      const group = stack.length > 1 ? stack.pop()! : { hasRepeat: false, hasAlternation: false };
      lastAtomGroup = group;
      i++;
    } else if (c === "|") {
      stack[stack.length - 1].hasAlternation = true;
      i++;
      lastAtomGroup = null;
    } else if (c === "*" || c === "+" || c === "?" || c === "{") {
      const quantifier = readQuantifier(source, i);
      if (quantifier === null) {
        i++;
        continue;
      }
      i = quantifier.end;
      if (source[i] === "?") i++; // lazy: same cost class
      if (!quantifier.repeats) continue;
      if (quantifier.unbounded) unbounded++;
      if (lastAtomGroup?.hasRepeat) {
        return "a repeated group contains a repeat (like (a+)+): it backtracks exponentially " +
          "on long names; rewrite it, e.g. (a+)+ as a+";
      }
      if (lastAtomGroup?.hasAlternation) {
        return "a repeated group has alternatives (like (a|aa)*): it can backtrack " +
          "exponentially on long names; use a character class such as [ab]* or separate rules";
      }
      stack[stack.length - 1].hasRepeat = true;
      lastAtomGroup = null;
    } else {
      i++;
      lastAtomGroup = null;
    }
    if (lastAtomGroup?.hasRepeat) stack[stack.length - 1].hasRepeat = true;
  }
  if (unbounded > MAX_UNBOUNDED_REPEATS) {
    return `${unbounded} unbounded repeats (*, +, {n,}): at most ${MAX_UNBOUNDED_REPEATS} are ` +
      "allowed, as each multiplies the worst-case matching time";
  }
  return null;
}

function skipClass(source: string, start: number): number {
  let i = start + 1;
  if (source[i] === "^") i++;
  if (source[i] === "]") i++;
  while (i < source.length && source[i] !== "]") i += source[i] === "\\" ? 2 : 1;
  return i + 1;
}

function groupPrefixLength(source: string, start: number): number {
  const rest = source.slice(start, start + 4);
  if (rest.startsWith("(?<=") || rest.startsWith("(?<!")) return 4;
  if (rest.startsWith("(?<")) {
    const close = source.indexOf(">", start);
    return close < 0 ? 3 : close - start + 1;
  }
  return 3; // (?: (?= (?!
}

function readQuantifier(
  source: string,
  start: number,
): { end: number; repeats: boolean; unbounded: boolean } | null {
  const c = source[start];
  if (c === "*" || c === "+") return { end: start + 1, repeats: true, unbounded: true };
  if (c === "?") return { end: start + 1, repeats: false, unbounded: false };
  const braces = /^\{(\d+)(,(\d*))?\}/.exec(source.slice(start));
  if (braces === null) return null; // a literal "{"
  const max = braces[2] === undefined
    ? Number(braces[1])
    : braces[3] === ""
    ? Infinity
    : Number(braces[3]);
  return { end: start + braces[0].length, repeats: max > 1, unbounded: max === Infinity };
}

/**
 * Times a regex on hostile names of {@linkcode MAX_NAME} characters built from its own
 * characters, and returns the slowest single match in milliseconds.
 *
 * @example
 * ```ts
 * worstMatchMs(/^mx\d+\.mail\.icloud\.com$/i) < 1; // true
 * ```
 */
export function worstMatchMs(regex: RegExp): number {
  const letters = [...new Set(regex.source.replace(/[^a-z0-9.-]/gi, ""))].join("") || "a";
  const inputs = [
    "a".repeat(MAX_NAME),
    "a.".repeat(MAX_NAME / 2),
    letters.repeat(Math.ceil(MAX_NAME / letters.length)).slice(0, MAX_NAME),
    letters.repeat(Math.ceil(MAX_NAME / letters.length)).slice(0, MAX_NAME - 1) + "!",
    "0".repeat(MAX_NAME - 1) + "!",
    "-".repeat(MAX_NAME),
  ];
  let worst = 0;
  for (const input of inputs) {
    const started = performance.now();
    regex.test(input);
    worst = Math.max(worst, performance.now() - started);
  }
  return worst;
}
