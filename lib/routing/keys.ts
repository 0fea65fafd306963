/**
 * From a lookup key (`user@domain` or a bare domain) to the ASCII domain we ask DNS about, or a
 * reason why no lookup makes sense.
 *
 * @module
 */

import { domainToASCII } from "node:url";
import { err, ok, type Result } from "../common/result.ts";

// One LDH label (underscore tolerated: it appears in real DNS names), 1 to 63 characters.
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
const ALL_DIGITS = /^[0-9]+$/;

/**
 * Extracts and normalises the domain of a lookup key, or says why the key names no domain worth a
 * DNS lookup.
 *
 * The domain is what follows the last `@` (a quoted local part may itself hold `@`); it is
 * lower-cased, loses one trailing dot, and a UTF-8 name is converted to its ASCII (A-label) form.
 * Wildcards, parent-domain keys (`.example.com`), address literals and anything that is not a
 * valid DNS name are refused without a DNS query. A single-label name (`user@localdomain`, as
 * Postfix passes it with `append_dot_mydomain = no`) is a domain like any other: top-level
 * domains may have MX records, and the resolver asks for it as an absolute name.
 *
 * @example
 * ```ts
 * domainFromKey("User@Example.COM."); // { ok: true, value: "example.com" }
 * domainFromKey("user@[192.0.2.1]"); // { ok: false, error: "address literal" }
 * ```
 */
export function domainFromKey(key: string): Result<string> {
  let domain = domainPart(key);
  if (domain === "*") return err("wildcard key");
  if (domain.startsWith("[")) return err("address literal");
  if (domain.startsWith(".")) return err("parent-domain key");
  if (isAscii(domain)) {
    domain = plainDomain(domain);
  } else {
    // IDNA maps case itself (UTS #46); JavaScript's toLowerCase would not map the same way
    // (a final sigma), and could name another domain.
    const ascii = domainToASCII(withoutTrailingDot(domain));
    if (ascii === "") return err("invalid internationalised domain name");
    domain = ascii;
  }
  if (domain === "") return err("empty domain");
  return checkDomainName(domain);
}

/**
 * The domain part of a key as written: what follows the last `@` (a quoted local part may hold
 * `@` itself), or the whole key.
 *
 * @example
 * ```ts
 * domainPart('"a@b"@Example.COM'); // "Example.COM"
 * ```
 */
export function domainPart(key: string): string {
  const at = key.lastIndexOf("@");
  return at < 0 ? key : key.slice(at + 1);
}

/**
 * A domain as cached and compared: lower case, one trailing dot removed (the root is implied).
 *
 * @example
 * ```ts
 * plainDomain("Example.COM."); // "example.com"
 * ```
 */
export function plainDomain(domain: string): string {
  return withoutTrailingDot(domain.toLowerCase());
}

/** One trailing dot removed (the root is implied). */
function withoutTrailingDot(domain: string): string {
  return domain.endsWith(".") ? domain.slice(0, -1) : domain;
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) > 0x7f) return false;
  }
  return true;
}

function checkDomainName(domain: string): Result<string> {
  if (domain.length > 253) return err("domain name longer than 253 characters");
  const labels = domain.split(".");
  for (const label of labels) {
    if (!LABEL.test(label)) return err("not a valid DNS name");
  }
  if (ALL_DIGITS.test(labels[labels.length - 1])) {
    return err("numeric top-level label (an IP address?)");
  }
  return ok(domain);
}
