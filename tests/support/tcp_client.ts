/**
 * A small line client for tests: send raw bytes, read reply lines with a deadline.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A TCP (or unix) connection that reads whole lines. */
export class LineClient {
  readonly conn: Deno.Conn;
  #pending = "";
  #closed = false;

  private constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  /** Connects to 127.0.0.1:port. */
  static async connect(port: number): Promise<LineClient> {
    return new LineClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Sends text (or bytes) as they are. */
  async send(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    let offset = 0;
    while (offset < bytes.length) offset += await this.conn.write(bytes.subarray(offset));
  }

  /** Reads one line (without newline); null when the server closed first. */
  async line(timeoutMs = 5000): Promise<string | null> {
    const deadline = Date.now() + timeoutMs;
    const buffer = new Uint8Array(65536);
    while (!this.#pending.includes("\n")) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply line within ${timeoutMs} ms`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const read = await Promise.race([
        this.conn.read(buffer),
        new Promise<"timeout">((resolve) => timer = setTimeout(() => resolve("timeout"), left)),
      ]);
      clearTimeout(timer);
      if (read === "timeout") throw new Error(`no reply line within ${timeoutMs} ms`);
      if (read === null) return null;
      this.#pending += decoder.decode(buffer.subarray(0, read));
    }
    const newline = this.#pending.indexOf("\n");
    const line = this.#pending.slice(0, newline);
    this.#pending = this.#pending.slice(newline + 1);
    return line;
  }

  /** Sends `get KEY` and returns the reply line. */
  async get(key: string): Promise<string | null> {
    await this.send(`get ${key}\n`);
    return await this.line();
  }

  /** Closes the connection (twice is fine). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // already closed by the server
    }
  }
}
