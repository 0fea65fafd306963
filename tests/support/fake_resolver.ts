/**
 * An in-process MxResolver for unit tests: answers from a table, counts queries, and can hold
 * answers back until the test releases them.
 *
 * @module
 */

import type { MxOutcome, MxResolver } from "../../lib/dns/types.ts";

/** A programmable resolver. */
export class FakeResolver implements MxResolver {
  /** Queries received, per domain. */
  readonly queries = new Map<string, number>();
  /** Answer per domain; a function is called per query. */
  readonly answers = new Map<string, MxOutcome | (() => MxOutcome | Promise<MxOutcome>)>();
  /** While set, every query waits for `release()`. */
  #gate: { promise: Promise<void>; open: () => void } | null = null;

  /** Total queries. */
  get total(): number {
    let sum = 0;
    for (const count of this.queries.values()) sum += count;
    return sum;
  }

  /** Sets the answer for a domain. */
  answer(domain: string, outcome: MxOutcome | (() => MxOutcome | Promise<MxOutcome>)): this {
    this.answers.set(domain, outcome);
    return this;
  }

  /** Makes queries wait until `release`. */
  hold(): void {
    let open = () => {};
    const promise = new Promise<void>((resolve) => open = resolve);
    this.#gate = { promise, open };
  }

  /** Lets held queries answer. */
  release(): void {
    this.#gate?.open();
    this.#gate = null;
  }

  async resolveMx(domain: string): Promise<MxOutcome> {
    this.queries.set(domain, (this.queries.get(domain) ?? 0) + 1);
    if (this.#gate) await this.#gate.promise;
    const answer = this.answers.get(domain);
    if (answer === undefined) return { kind: "nxdomain", negativeTtl: 60 };
    return typeof answer === "function" ? await answer() : answer;
  }
}

/** A manual clock in epoch milliseconds. */
export class FakeClock {
  now = 1_000_000_000;
  /** Moves time forward by seconds. */
  advance(seconds: number): void {
    this.now += seconds * 1000;
  }
  /** The `now` function to inject. */
  readonly read = (): number => this.now;
}
