/**
 * A programmable DNS server for tests, the end-to-end harness and benchmarks.
 *
 * Serves UDP and TCP (RFC 7766 framing, several queries per connection) on one loopback port and
 * answers each query from a per-name behaviour: real answers, failures, silence, and hostile
 * packets. Behaviours can change at run time.
 *
 * As a program it serves a JSON zone file until killed:
 *
 * ```sh
 * deno run --allow-net --allow-read tests/support/fake_dns.ts --zone-file zone.json [--port N]
 * ```
 *
 * The file holds `{ "zone": { "name": BEHAVIOUR, ... }, "fallback": BEHAVIOUR }` (both optional,
 * no `raw` behaviours); `port=NNNN` is printed on stdout once both sockets listen.
 *
 * @module
 */

// @ts-types="@types/dns-packet"
import * as dnsPacket from "dns-packet";
import dgram from "node:dgram";
import { Buffer } from "node:buffer";
import type { DnsServer } from "../../lib/dns/types.ts";
import { closeQuietly } from "../../lib/common/errors.ts";

/** One MX record of an `mx` behaviour. */
export interface FakeMxRecord {
  preference: number;
  /**
   * Sent as the UTF-8 bytes of each label between dots: a space or a control character goes on
   * the wire as that byte (`"backup mx.example"` is `backup\032mx.example` in a zone file).
   */
  exchange: string;
  /** Defaults to the behaviour's ttl. */
  ttl?: number;
}

/** The SOA of a negative answer; `zone` (its owner) defaults to the queried name's parent. */
export interface FakeSoa {
  ttl: number;
  minimum: number;
  zone?: string;
}

/** How the server answers queries for a name. */
export type FakeDnsBehaviour =
  /** NOERROR with these MX records (ttl defaults to 300). */
  | { kind: "mx"; records: FakeMxRecord[]; ttl?: number }
  /** NOERROR with the null MX `0 .` (RFC 7505). */
  | { kind: "nullmx"; ttl?: number }
  /** NOERROR without records, with an SOA in the authority section if given. */
  | { kind: "nodata"; soa?: FakeSoa }
  /** NXDOMAIN, with an SOA in the authority section if given. */
  | { kind: "nxdomain"; soa?: FakeSoa }
  | { kind: "servfail" }
  | { kind: "refused" }
  /** Any response code, e.g. 4 (NOTIMP). */
  | { kind: "rcode"; rcode: number }
  /** No answer at all. */
  | { kind: "silence" }
  /** UDP: TC=1 and no records; TCP: `then`. */
  | { kind: "truncate"; then: FakeDnsBehaviour }
  /** `then`, with the ID of the query plus one. */
  | { kind: "wrongId"; then: FakeDnsBehaviour }
  /** `then`, with the question name prefixed by "wrong-". */
  | { kind: "wrongQuestion"; then: FakeDnsBehaviour }
  /** Random bytes; the first two are the query's ID unless `keepId` is false. */
  | { kind: "garbage"; keepId?: boolean }
  /** `then`, `ms` milliseconds later. */
  | { kind: "delay"; ms: number; then: FakeDnsBehaviour }
  /** A CNAME to `target`, followed by `then` (or else the target's behaviour) for the target. */
  | { kind: "cname"; target: string; ttl?: number; then?: FakeDnsBehaviour }
  /** Every reply of every listed behaviour, in order (e.g. a spoofed one, then the real one). */
  | { kind: "multi"; replies: FakeDnsBehaviour[] }
  /** The Nth query for the name gets `list[N]`; the last entry answers every later one. */
  | { kind: "perQuery"; list: FakeDnsBehaviour[] }
  /**
   * Exactly these records, whatever their owner, class or type (dns-packet records: `class: "CH"`,
   * `flush: true` for the mDNS cache-flush bit), with `rcode` (NOERROR unless given): answers no
   * honest server gives for the question. After a CNAME they follow the chain's records.
   */
  | {
    kind: "records";
    rcode?: number;
    answers?: dnsPacket.Answer[];
    authorities?: dnsPacket.Answer[];
  }
  /** Exactly the bytes `reply` returns for the query's bytes (null: no answer). */
  | { kind: "raw"; reply: (query: Uint8Array) => Uint8Array | null };

/** Options of {@linkcode startFakeDns}. */
export interface FakeDnsOptions {
  /** Behaviours by name (case-insensitive, trailing dot optional). */
  zone?: Record<string, FakeDnsBehaviour> | Map<string, FakeDnsBehaviour>;
  /** For names not in the zone; NXDOMAIN without SOA unless given. */
  fallback?: FakeDnsBehaviour;
  /** Listen address, 127.0.0.1 unless given. */
  hostname?: string;
  /** Port for both UDP and TCP; a free one unless given. */
  port?: number;
}

/** A running fake DNS server. */
export interface FakeDns {
  /** The UDP and TCP port. */
  readonly port: number;
  /** The address to give a resolver. */
  readonly server: DnsServer;
  /** Queries received so far (UDP and TCP), since the last {@linkcode FakeDns.resetCounts}. */
  readonly queryCount: number;
  /** Queries received for `name` (case-insensitive). */
  queriesFor(name: string): number;
  /** The source port and message ID of every UDP packet received, since the last reset. */
  readonly udpSources: readonly { port: number; id: number }[];
  /** Zeroes all query counts (perQuery behaviours start again too). */
  resetCounts(): void;
  /**
   * Sets the behaviour for `name`. Replace a behaviour rather than change it in place: replies
   * are kept per question until the zone changes through this or the two methods below.
   */
  setZone(name: string, behaviour: FakeDnsBehaviour): void;
  /** Removes `name` from the zone, so the fallback answers it. */
  deleteZone(name: string): void;
  /** Sets the behaviour for names not in the zone. */
  setDefault(behaviour: FakeDnsBehaviour): void;
  /** Closes both sockets and every TCP connection; cancels delayed replies. */
  close(): Promise<void>;
  /** Same as {@linkcode FakeDns.close}. */
  stop(): Promise<void>;
}

const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;
const DEFAULT_TTL = 300;
const MAX_CHAIN = 16;
/**
 * Encoded replies kept for repeated queries (the bench asks 13,184 names of its 20,000, the soak
 * many more): beyond this many the memo starts again, so a long soak cannot grow it without bound.
 */
const MAX_MEMO_REPLIES = 50_000;

/**
 * Whether a behaviour answers a query the same way every time (its reply bytes, less the ID,
 * depend only on the question, the transport and the zone), so its encoded reply can be kept and
 * reused. Each of these plans exactly one packet, sent at once.
 */
function isDeterministic(behaviour: FakeDnsBehaviour, transport: "udp" | "tcp"): boolean {
  switch (behaviour.kind) {
    case "mx":
    case "nullmx":
    case "nodata":
    case "nxdomain":
    case "servfail":
    case "refused":
    case "rcode":
    case "cname":
    case "records":
      return true;
    case "truncate":
      return transport === "udp" || isDeterministic(behaviour.then, transport);
    default:
      return false;
  }
}

/**
 * The EDNS0 OPT record of RFC 6891 advertising 1232 bytes, as the router sends and we echo.
 * The size is written out, not imported from the router: tests compare the router's bytes
 * against this independent copy.
 */
export const EDNS_OPT: dnsPacket.Answer = {
  type: "OPT",
  name: ".",
  udpPayloadSize: 1232,
  extendedRcode: 0,
  ednsVersion: 0,
  flags: 0,
  flag_do: false,
  options: [],
};

function key(name: string): string {
  return name.toLowerCase().replace(/\.$/, "");
}

/** A decoded query plus its raw bytes. */
interface Query {
  bytes: Uint8Array;
  id: number;
  name: string;
  type: dnsPacket.RecordType;
  recursionDesired: boolean;
  /** The largest UDP reply the client accepts (EDNS0, else 512). */
  udpLimit: number;
  edns: boolean;
}

function decodeQuery(bytes: Uint8Array): Query | null {
  try {
    const packet = dnsPacket.decode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
    const question = packet.questions?.[0];
    if (packet.flag_qr || question === undefined) return null;
    const opt = packet.additionals?.find((record) => record.type === "OPT");
    return {
      bytes,
      id: packet.id ?? 0,
      name: question.name,
      type: question.type,
      recursionDesired: packet.flag_rd,
      udpLimit: opt?.type === "OPT" ? Math.max(512, opt.udpPayloadSize) : 512,
      edns: opt !== undefined,
    };
  } catch {
    return null;
  }
}

/** The parts of a reply, before encoding. */
export interface ReplyParts {
  rcode?: number;
  answers?: dnsPacket.Answer[];
  authorities?: dnsPacket.Answer[];
  truncated?: boolean;
  /** Overrides the query's ID. */
  id?: number;
  /** Overrides the question name. */
  questionName?: string;
}

/**
 * Encodes a reply to `query` (its ID and question echoed): a helper for `raw` behaviours.
 * Throws if `query` is not a decodable query.
 */
export function replyTo(query: Uint8Array, parts: ReplyParts = {}): Uint8Array {
  const decoded = decodeQuery(query);
  if (decoded === null) throw new Error("not a DNS query");
  return encodeReply(decoded, parts);
}

function encodeReply(query: Query, parts: ReplyParts): Uint8Array {
  const flags = (parts.rcode ?? RCODE.NOERROR) | dnsPacket.RECURSION_AVAILABLE |
    (query.recursionDesired ? dnsPacket.RECURSION_DESIRED : 0) |
    (parts.truncated ? dnsPacket.TRUNCATED_RESPONSE : 0);
  return dnsPacket.encode({
    type: "response",
    id: parts.id ?? query.id,
    flags,
    questions: [{ name: parts.questionName ?? query.name, type: query.type, class: "IN" }],
    answers: parts.answers ?? [],
    authorities: parts.authorities ?? [],
    additionals: query.edns ? [EDNS_OPT] : [],
  });
}

function soaRecord(name: string, soa: FakeSoa): dnsPacket.Answer {
  const labels = name.split(".");
  const zone = soa.zone ?? (labels.length > 1 ? labels.slice(1).join(".") : name);
  return {
    type: "SOA",
    name: zone,
    ttl: soa.ttl,
    class: "IN",
    data: {
      mname: `ns.${zone}`,
      rname: `hostmaster.${zone}`,
      serial: 1,
      refresh: 3600,
      retry: 600,
      expire: 86400,
      minimum: soa.minimum,
    },
  };
}

/** The rcode and records a content behaviour gives for `name`; null for other behaviours. */
interface Content {
  rcode: number;
  answers: dnsPacket.Answer[];
  authorities: dnsPacket.Answer[];
}

/** The kept replies to one question (its bytes after the ID), per transport. */
interface MemoReplies {
  /** The name as counted. */
  name: string;
  udp?: Uint8Array;
  tcp?: Uint8Array;
}

/** One packet to send, `delayMs` after the query arrived (null bytes: nothing). */
interface Send {
  delayMs: number;
  bytes: Uint8Array;
}

class Server implements FakeDns {
  readonly port: number;
  readonly server: DnsServer;
  #zone = new Map<string, FakeDnsBehaviour>();
  #fallback: FakeDnsBehaviour;
  #counts = new Map<string, number>();
  #total = 0;
  readonly udpSources: { port: number; id: number }[] = [];
  #udp: dgram.Socket;
  #listener: Deno.TcpListener;
  #conns = new Set<Deno.TcpConn>();
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #tasks = new Set<Promise<void>>();
  #closed = false;
  /**
   * Replies of deterministic behaviours by the query's bytes after the ID, one per transport: a
   * repeated question is answered without decoding and encoding it again. Like a real resolver's
   * cache, it keeps the fake server's cost per query small next to the router's; cleared on zone
   * changes. A reply that was not cut to the UDP limit is the same over both transports, so a
   * question asked over UDP is answered from the memo over TCP too, and the other way round.
   */
  #memo = new Map<string, MemoReplies>();

  constructor(options: FakeDnsOptions, udp: dgram.Socket, listener: Deno.TcpListener) {
    const entries = options.zone instanceof Map
      ? options.zone.entries()
      : Object.entries(options.zone ?? {});
    for (const [name, behaviour] of entries) this.#zone.set(key(name), behaviour);
    this.#fallback = options.fallback ?? { kind: "nxdomain" };
    this.#udp = udp;
    this.#listener = listener;
    this.port = listener.addr.port;
    this.server = { host: listener.addr.hostname, port: this.port };
    udp.on("message", (bytes: Uint8Array, sender: dgram.RemoteInfo) => {
      this.udpSources.push({
        port: sender.port,
        id: bytes.length >= 2 ? (bytes[0] << 8) | bytes[1] : -1,
      });
      this.#answer(bytes, "udp", (reply) => {
        if (!this.#closed) udp.send(reply, sender.port, sender.address, () => {});
      });
    });
    this.#track(this.#acceptLoop());
  }

  get queryCount(): number {
    return this.#total;
  }

  queriesFor(name: string): number {
    return this.#counts.get(key(name)) ?? 0;
  }

  resetCounts(): void {
    this.#counts.clear();
    this.#total = 0;
    this.udpSources.length = 0;
  }

  setZone(name: string, behaviour: FakeDnsBehaviour): void {
    this.#zone.set(key(name), behaviour);
    this.#memo.clear();
  }

  deleteZone(name: string): void {
    this.#zone.delete(key(name));
    this.#memo.clear();
  }

  setDefault(behaviour: FakeDnsBehaviour): void {
    this.#fallback = behaviour;
    this.#memo.clear();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#listener.close();
    for (const conn of this.#conns) closeQuietly(conn);
    await new Promise<void>((resolve) => this.#udp.close(() => resolve()));
    await Promise.allSettled([...this.#tasks]);
  }

  stop(): Promise<void> {
    return this.close();
  }

  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
  }

  #lookup(name: string): FakeDnsBehaviour {
    return this.#zone.get(key(name)) ?? this.#fallback;
  }

  /** Counts the query and sends the replies its behaviour asks for. */
  #answer(bytes: Uint8Array, transport: "udp" | "tcp", send: (reply: Uint8Array) => void): void {
    const memoKey = bytes.length > 12 && bytes.length <= 512
      ? String.fromCharCode.apply(null, bytes.subarray(2) as unknown as number[])
      : null;
    const memo = memoKey === null ? undefined : this.#memo.get(memoKey);
    const kept = memo?.[transport];
    if (memo !== undefined && kept !== undefined) {
      this.#count(memo.name);
      const reply = kept.slice();
      reply[0] = bytes[0];
      reply[1] = bytes[1];
      send(reply);
      return;
    }
    const query = decodeQuery(bytes);
    if (query === null) return;
    const name = key(query.name);
    const seen = this.#count(name);
    const behaviour = this.#lookup(name);
    const sends = this.#plan(behaviour, { query, transport, seen });
    if (memoKey !== null && isDeterministic(behaviour, transport)) {
      if (this.#memo.size >= MAX_MEMO_REPLIES) this.#memo.clear();
      const entry = memo ?? { name };
      const reply = sends[0].bytes.slice();
      entry[transport] = reply;
      // Not cut to fit UDP (TC clear, within the query's UDP limit): the same bytes over TCP.
      if (
        behaviour.kind !== "truncate" && (reply[2] & 0x02) === 0 && reply.length <= query.udpLimit
      ) {
        entry.udp = entry.tcp = reply;
      }
      this.#memo.set(memoKey, entry);
    }
    for (const { delayMs, bytes } of sends) {
      if (delayMs <= 0) {
        send(bytes);
        continue;
      }
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        send(bytes);
      }, delayMs);
      this.#timers.add(timer);
    }
  }

  /** Counts a query for `name`; returns how many came before it. */
  #count(name: string): number {
    const seen = this.#counts.get(name) ?? 0;
    this.#counts.set(name, seen + 1);
    this.#total++;
    return seen;
  }

  /** The packets a behaviour sends in answer to one query. */
  #plan(
    behaviour: FakeDnsBehaviour,
    context: { query: Query; transport: "udp" | "tcp"; seen: number },
  ): Send[] {
    const { query, transport } = context;
    switch (behaviour.kind) {
      case "silence":
        return [];
      case "truncate":
        return transport === "udp"
          ? [{ delayMs: 0, bytes: encodeReply(query, { truncated: true }) }]
          : this.#plan(behaviour.then, context);
      case "wrongId":
        return this.#plan(behaviour.then, {
          ...context,
          query: { ...query, id: (query.id + 1) & 0xffff },
        });
      case "wrongQuestion":
        return this.#plan(behaviour.then, {
          ...context,
          query: { ...query, name: `wrong-${query.name}` },
        });
      case "garbage": {
        const bytes = crypto.getRandomValues(new Uint8Array(12 + Math.floor(Math.random() * 200)));
        if (behaviour.keepId !== false) bytes.set(query.bytes.subarray(0, 2));
        return [{ delayMs: 0, bytes }];
      }
      case "delay":
        return this.#plan(behaviour.then, context).map((send) => ({
          ...send,
          delayMs: send.delayMs + behaviour.ms,
        }));
      case "multi":
        return behaviour.replies.flatMap((reply) => this.#plan(reply, context));
      case "perQuery": {
        const { list } = behaviour;
        if (list.length === 0) return [];
        return this.#plan(list[Math.min(context.seen, list.length - 1)], context);
      }
      case "raw": {
        const bytes = behaviour.reply(query.bytes);
        return bytes === null ? [] : [{ delayMs: 0, bytes }];
      }
      default: {
        const content = this.#content(behaviour, query.name, query.type);
        let bytes = encodeReply(query, content);
        if (transport === "udp" && bytes.length > query.udpLimit) {
          // Like a real server: what does not fit is dropped and TC set (RFC 2181 §9).
          bytes = encodeReply(query, { rcode: content.rcode, truncated: true });
        }
        return [{ delayMs: 0, bytes }];
      }
    }
  }

  /** Records for content behaviours, following CNAMEs like a recursive resolver would. */
  #content(behaviour: FakeDnsBehaviour, name: string, type: dnsPacket.RecordType): Content {
    const answers: dnsPacket.Answer[] = [];
    const visited = new Set<string>();
    let owner = name;
    let current: FakeDnsBehaviour | undefined = behaviour;
    for (let hop = 0; current?.kind === "cname" && hop < MAX_CHAIN; hop++) {
      answers.push({
        type: "CNAME",
        name: owner,
        ttl: current.ttl ?? DEFAULT_TTL,
        class: "IN",
        data: current.target,
      });
      visited.add(key(owner));
      owner = current.target;
      // A loop ends where a name repeats, as the answer section would show it.
      current = visited.has(key(owner)) ? undefined : current.then ?? this.#lookup(owner);
    }
    const wantsMx = type === "MX";
    switch (current?.kind) {
      case "mx":
        if (wantsMx) {
          for (const record of current.records) {
            answers.push({
              type: "MX",
              name: owner,
              ttl: record.ttl ?? current.ttl ?? DEFAULT_TTL,
              class: "IN",
              data: { preference: record.preference, exchange: record.exchange },
            });
          }
        }
        return { rcode: RCODE.NOERROR, answers, authorities: [] };
      case "nullmx":
        if (wantsMx) {
          answers.push({
            type: "MX",
            name: owner,
            ttl: current.ttl ?? DEFAULT_TTL,
            class: "IN",
            data: { preference: 0, exchange: "." },
          });
        }
        return { rcode: RCODE.NOERROR, answers, authorities: [] };
      case "nodata":
      case "nxdomain":
        return {
          rcode: current.kind === "nodata" ? RCODE.NOERROR : RCODE.NXDOMAIN,
          answers,
          authorities: current.soa ? [soaRecord(owner, current.soa)] : [],
        };
      case "records":
        return {
          rcode: current.rcode ?? RCODE.NOERROR,
          answers: [...answers, ...current.answers ?? []],
          authorities: current.authorities ?? [],
        };
      case "servfail":
        return { rcode: RCODE.SERVFAIL, answers: [], authorities: [] };
      case "refused":
        return { rcode: RCODE.REFUSED, answers: [], authorities: [] };
      case "rcode":
        return { rcode: current.rcode, answers: [], authorities: [] };
      default:
        // A chain ending in a loop or a non-content behaviour: the CNAMEs alone.
        return { rcode: RCODE.NOERROR, answers, authorities: [] };
    }
  }

  async #acceptLoop(): Promise<void> {
    while (!this.#closed) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch {
        return; // The listener was closed.
      }
      this.#conns.add(conn);
      this.#track(
        this.#serveConn(conn).finally(() => {
          this.#conns.delete(conn);
          closeQuietly(conn);
        }),
      );
    }
  }

  /** Answers length-prefixed queries on one connection until the client hangs up. */
  async #serveConn(conn: Deno.TcpConn): Promise<void> {
    // Serialise writes: delayed replies may finish in any order, frames must not interleave.
    let writing: Promise<void> = Promise.resolve();
    const send = (reply: Uint8Array) => {
      const frame = new Uint8Array(reply.length + 2);
      new DataView(frame.buffer).setUint16(0, reply.length);
      frame.set(reply, 2);
      writing = writing.then(() => writeAll(conn, frame)).catch(() => {});
    };
    try {
      for await (const query of tcpMessages(conn)) this.#answer(query, "tcp", send);
    } catch {
      // Reset by the client or closed by close().
    }
    await writing;
  }
}

/**
 * The DNS messages a TCP connection carries (each after its 2-byte length), until the peer
 * closes it; throws when the connection fails.
 */
export async function* tcpMessages(conn: Deno.Conn): AsyncGenerator<Uint8Array> {
  let pending = new Uint8Array(0);
  const chunk = new Uint8Array(65538);
  while (true) {
    const count = await conn.read(chunk);
    if (count === null) return;
    const joined = new Uint8Array(pending.length + count);
    joined.set(pending);
    joined.set(chunk.subarray(0, count), pending.length);
    let offset = 0;
    while (joined.length - offset >= 2) {
      const length = (joined[offset] << 8) | joined[offset + 1];
      if (joined.length - offset - 2 < length) break;
      yield joined.slice(offset + 2, offset + 2 + length);
      offset += 2 + length;
    }
    pending = joined.slice(offset);
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.length;) {
    written += await conn.write(bytes.subarray(written));
  }
}

/** Starts a fake DNS server on a free port (or `options.port`) of 127.0.0.1, UDP and TCP. */
export async function startFakeDns(options: FakeDnsOptions = {}): Promise<FakeDns> {
  const hostname = options.hostname ?? "127.0.0.1";
  let lastError: unknown;
  // A free UDP port may be taken for TCP: try a few ports.
  for (let tries = 0; tries < 20; tries++) {
    const udp = dgram.createSocket(hostname.includes(":") ? "udp6" : "udp4");
    const bound = await new Promise<Error | null>((resolve) => {
      udp.once("error", resolve);
      udp.bind(options.port ?? 0, hostname, () => resolve(null));
    });
    if (bound !== null) {
      lastError = bound;
      await new Promise<void>((resolve) => {
        try {
          udp.close(() => resolve());
        } catch {
          resolve();
        }
      });
      if (options.port !== undefined) break;
      continue;
    }
    try {
      const listener = Deno.listen({ hostname, port: udp.address().port, transport: "tcp" });
      return new Server(options, udp, listener);
    } catch (error) {
      lastError = error;
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      if (options.port !== undefined) break;
    }
  }
  throw new Error(`fake DNS: cannot listen: ${lastError}`);
}

if (import.meta.main) {
  const args = [...Deno.args];
  const value = (flag: string) => {
    const index = args.indexOf(flag);
    return index >= 0 ? args[index + 1] : undefined;
  };
  const zoneFile = value("--zone-file");
  const portText = value("--port");
  const config = zoneFile === undefined
    ? {}
    : JSON.parse(await Deno.readTextFile(zoneFile)) as Pick<FakeDnsOptions, "zone" | "fallback">;
  const fake = await startFakeDns({
    zone: config.zone,
    fallback: config.fallback,
    hostname: value("--host"),
    port: portText === undefined ? undefined : Number(portText),
  });
  console.log(`port=${fake.port}`);
  const shutdown = async () => {
    await fake.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", shutdown);
  Deno.addSignalListener("SIGINT", shutdown);
}
