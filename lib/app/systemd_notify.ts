/**
 * Tells systemd (`Type=notify`) when the router is ready, reloading or stopping, and what it is
 * doing (`STATUS=`), by running `systemd-notify`.
 *
 * The notification protocol is a datagram on the unix socket named by `NOTIFY_SOCKET`; stable
 * Deno cannot open a unix datagram socket (`Deno.listenDatagram` with a unix transport needs
 * `--unstable-net`, and node:dgram knows only udp4 and udp6), so the message is handed to
 * `systemd-notify`. The message then comes from that child, not from the main process, which is
 * why the unit needs `NotifyAccess=all`. `systemd-notify` is run without `--no-block`: it waits
 * until systemd has read the message, so systemd can still tell which service the short-lived
 * sender belonged to (with `--no-block` the child may be gone first and the message dropped, as
 * systemd-notify(1) warns). The router never waits for it: messages go out in order, one child
 * at a time, in the background.
 *
 * @module
 */

import { errorMessage } from "../common/errors.ts";
import { log } from "../common/log.ts";

/** How one run of `systemd-notify` ended. */
export interface NotifyRun {
  success: boolean;
  /** What went wrong (its stderr, or why it could not run); empty on success. */
  detail: string;
}

/** Runs `systemd-notify` with these arguments and resolves when it has ended; never rejects. */
export type NotifyRunner = (args: string[]) => Promise<NotifyRun>;

/** Options of {@linkcode SystemdNotifier}. */
export interface SystemdNotifierInit {
  /** `NOTIFY_SOCKET` from the environment; unset or empty: nothing is ever sent. */
  socket: string | undefined;
  /** Runs `systemd-notify`; the real one by default (tests pass a fake). */
  run?: NotifyRunner;
  /** Told the first failure only; default: a warning in the log. */
  onFirstFailure?: (message: string) => void;
}

/** How often the `STATUS=` line is refreshed while serving. */
export const STATUS_INTERVAL_MS = 30_000;

/**
 * Sends `READY=1`, `RELOADING=1`, `STOPPING=1` and `STATUS=` to systemd, in call order. Without
 * `NOTIFY_SOCKET` every call does nothing (no child is started). A failure is logged once and
 * never thrown: the router serves whether or not systemd hears of it.
 *
 * @example
 * ```ts
 * const notifier = new SystemdNotifier({ socket: Deno.env.get("NOTIFY_SOCKET") });
 * notifier.ready("0 lookups");
 * ```
 */
export class SystemdNotifier {
  /** Whether messages are sent at all (`NOTIFY_SOCKET` is set). */
  readonly enabled: boolean;
  readonly #run: NotifyRunner;
  readonly #onFirstFailure: (message: string) => void;
  #queue: Promise<void> = Promise.resolve();
  #failed = false;

  /**
   * A notifier for `NOTIFY_SOCKET` of this process's environment. Without the permission to read
   * it, an error says what systemd will miss and the fix, and nothing is sent.
   *
   * @example
   * ```ts
   * const notifier = SystemdNotifier.fromEnvironment();
   * ```
   */
  static fromEnvironment(): SystemdNotifier {
    let socket: string | undefined;
    try {
      socket = Deno.env.get("NOTIFY_SOCKET");
    } catch (error) {
      log
        .error`cannot read NOTIFY_SOCKET (${
        errorMessage(error)
      }): systemd is not told that the router is ready, and a Type=notify start times out; run it with --allow-env=NOTIFY_SOCKET --allow-run=systemd-notify, as the compile task does`;
    }
    return new SystemdNotifier({ socket });
  }

  constructor(init: SystemdNotifierInit) {
    this.enabled = (init.socket ?? "") !== "";
    this.#run = init.run ?? runSystemdNotify;
    this.#onFirstFailure = init.onFirstFailure ?? ((message) => log.warning`${message}`);
  }

  /** Startup or a reload is complete; `status` becomes the `STATUS=` line too. */
  ready(status?: string): Promise<void> {
    return this.#send(["READY=1", ...statusField(status)]);
  }

  /** A reload has begun; {@linkcode ready} ends it. */
  reloading(): Promise<void> {
    return this.#send(["RELOADING=1"]);
  }

  /** The router is stopping. */
  stopping(): Promise<void> {
    return this.#send(["STOPPING=1"]);
  }

  /** Replaces the status line `systemctl status` shows. */
  status(text: string): Promise<void> {
    return this.#send(statusField(text));
  }

  /** Resolves once every message asked for so far has been handed over (or failed). */
  settled(): Promise<void> {
    return this.#queue;
  }

  #send(fields: string[]): Promise<void> {
    if (!this.enabled) return this.#queue;
    this.#queue = this.#queue.then(async () => {
      const result = await this.#run(fields).catch((error): NotifyRun => ({
        success: false,
        detail: errorMessage(error),
      }));
      if (result.success || this.#failed) return;
      this.#failed = true;
      this.#onFirstFailure(
        `systemd notification ${fields[0]} failed: ${result.detail || "systemd-notify failed"}; ` +
          "systemd may not learn that the router is ready or reloading (a Type=notify start " +
          "then times out): install systemd-notify (Debian package systemd) and keep " +
          "NotifyAccess=all in the unit; later failures are not logged",
      );
    });
    return this.#queue;
  }
}

function statusField(status: string | undefined): string[] {
  // One line: systemd shows the status as it is.
  return status === undefined ? [] : [`STATUS=${status.replace(/[\r\n]+/g, " ")}`];
}

/**
 * The real `systemd-notify`, found on the PATH.
 *
 * @example
 * ```ts
 * const run = await runSystemdNotify(["READY=1"]);
 * if (!run.success) console.error(run.detail);
 * ```
 */
export const runSystemdNotify: NotifyRunner = async (args) => {
  try {
    const { success, stderr } = await new Deno.Command("systemd-notify", {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    return { success, detail: new TextDecoder().decode(stderr).trim().split("\n")[0] ?? "" };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return { success: false, detail: "systemd-notify is not installed (no such program)" };
    }
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      return { success: false, detail: "not allowed to run systemd-notify (--allow-run)" };
    }
    return { success: false, detail: errorMessage(error) };
  }
};

/** The live counters the status line shows. */
export interface StatusCounts {
  /** Lookups answered, whatever the result. */
  lookups: number;
  /** Lookups answered from a fresh cache entry. */
  cacheHits: number;
  /** Lookups that had to ask DNS. */
  cacheMisses: number;
  /** DNS lookups that failed (answered 400, or from a stale entry). */
  dnsFailures: number;
}

/**
 * The `STATUS=` text: lookups, cache hit ratio and DNS failures.
 *
 * @example
 * ```ts
 * statusText({ lookups: 1000, cacheHits: 900, cacheMisses: 100, dnsFailures: 2 });
 * // "1000 lookups, cache hit ratio 90.0 %, 2 DNS failures"
 * ```
 */
export function statusText(counts: StatusCounts): string {
  const asked = counts.cacheHits + counts.cacheMisses;
  const ratio = asked === 0 ? "-" : `${(counts.cacheHits / asked * 100).toFixed(1)} %`;
  return `${counts.lookups} lookups, cache hit ratio ${ratio}, ` +
    `${counts.dnsFailures} DNS failure${counts.dnsFailures === 1 ? "" : "s"}`;
}

/**
 * Sends `STATUS=` with `read()` every `intervalMs` while the notifier is enabled; `stop` ends it.
 * The timer does not keep the process alive.
 *
 * @example
 * ```ts
 * declare function counts(): StatusCounts;
 * const notifier = SystemdNotifier.fromEnvironment();
 * const updates = startStatusUpdates(notifier, () => statusText(counts()));
 * // ... serve ...
 * updates.stop();
 * ```
 */
export function startStatusUpdates(
  notifier: SystemdNotifier,
  read: () => string,
  intervalMs: number = STATUS_INTERVAL_MS,
): { stop(): void } {
  if (!notifier.enabled) return { stop() {} };
  const timer = setInterval(() => notifier.status(read()), intervalMs);
  Deno.unrefTimer(timer);
  return { stop: () => clearInterval(timer) };
}
