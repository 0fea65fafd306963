/**
 * The outcomes of one MX lookup, as the rest of the router sees them.
 *
 * The resolver never throws: every way a lookup can end is one of these kinds, and every caller
 * handles every kind (an exhaustive `switch`), so the type checker proves no outcome is forgotten.
 *
 * @module
 */

/** A DNS server to ask: an IPv4 or IPv6 address and a UDP/TCP port. */
export interface DnsServer {
  /** IPv4 dotted quad or IPv6 address without brackets. */
  host: string;
  /** Port, 53 unless given. */
  port: number;
}

/** NOERROR with MX records: exchanges lower-cased, without trailing dot, lowest preference first. */
export interface MxAnswer {
  kind: "mx";
  /** Exchange host names in the order rules are tried (preference, then answer order). */
  hosts: string[];
  /** The smallest TTL of the MX set, in seconds. */
  ttl: number;
  /**
   * How many of `hosts`, from the first, share the lowest preference: the primary MX hosts,
   * which alone decide under the `primary` match mode. Absent: 1.
   */
  primaryCount?: number;
  /**
   * Exchanges skipped as not host names, in zone-file form (`backup\032mx.example`), at most
   * 16: for the debug log. Absent when none was skipped.
   */
  skipped?: string[];
}

/** A single MX record with exchange "." (RFC 7505): the domain accepts no mail. */
export interface NullMxAnswer {
  kind: "nullmx";
  /** TTL of the null MX record, in seconds. */
  ttl: number;
}

/** NOERROR without MX records: the domain itself is the implicit MX (RFC 5321 §5.1). */
export interface NoDataAnswer {
  kind: "nodata";
  /** min(SOA TTL, SOA MINIMUM) from the authority section (RFC 2308), or null without an SOA. */
  negativeTtl: number | null;
}

/** NXDOMAIN: the domain does not exist. */
export interface NxDomainAnswer {
  kind: "nxdomain";
  /** min(SOA TTL, SOA MINIMUM) from the authority section (RFC 2308), or null without an SOA. */
  negativeTtl: number | null;
}

/** SERVFAIL, REFUSED, timeout, a malformed or mismatched answer: we do not know, so we defer. */
export interface TempFailAnswer {
  kind: "tempfail";
  /** A short reason for logs and the 400 reply, e.g. "SERVFAIL from 127.0.0.1:53". */
  reason: string;
  /** What failed, for metrics: a fixed set of labels. */
  cause: TempFailCause;
}

/**
 * Why a lookup failed temporarily; a fixed label set for metrics. `overload`, `down` and `local`
 * say nothing about the domain (our own limit, a server skipped, our host out of descriptors):
 * they are not cached as its failure.
 */
export type TempFailCause =
  | "servfail"
  | "refused"
  | "rcode"
  | "timeout"
  | "malformed"
  | "network"
  | "overload"
  | "down"
  | "local";

/** Every way an MX lookup can end. */
export type MxOutcome = MxAnswer | NullMxAnswer | NoDataAnswer | NxDomainAnswer | TempFailAnswer;

/** What the router needs from DNS: one MX lookup, bounded in time, never throwing. */
export interface MxResolver {
  /** Looks up the MX records of an ASCII (A-label) domain without trailing dot. */
  resolveMx(domain: string): Promise<MxOutcome>;
}
