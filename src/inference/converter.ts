/**
 * Runs the serving log's DuckDB statements (JSON lines to Parquet) in a child process at low
 * scheduling priority. In-process, each flush's conversion took one of the cores the server,
 * Redis and the load share, and /predict's p99 at 2,000 req/s went from 4 ms to 15-20 ms; niced,
 * the kernel runs it in what they leave. The child starts on the first statement and again after
 * it dies (a statement in flight then fails, and the log keeps its rows for the next flush).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { setPriority } from 'node:os';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('./converter-child.mjs', import.meta.url));
/** Nice value of the converter: below the server, above nothing else that matters. */
const PRIORITY = 10;

interface Pending {
  resolve(): void;
  reject(err: Error): void;
}

export class ParquetConverter {
  private child: ChildProcess | undefined;
  private ready: Promise<ChildProcess> | undefined;
  private readonly pending = new Map<number, Pending>();
  private next = 0;

  /** Runs one statement in the converter; rejects with DuckDB's message. */
  async run(sql: string): Promise<void> {
    const child = await this.start();
    const id = ++this.next;
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      child.send({ id, sql }, (err) => {
        if (!err) return;
        this.pending.delete(id);
        reject(err);
      });
    });
  }

  close(): void {
    const child = this.child;
    this.child = undefined;
    this.ready = undefined;
    if (child && child.connected) child.disconnect();
  }

  private start(): Promise<ChildProcess> {
    this.ready ??= new Promise<ChildProcess>((resolve, reject) => {
      // Plain node, not the CLI's loader: the child is JavaScript and needs only DuckDB.
      const child = fork(CHILD, [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv: [] });
      this.child = child;
      child.on('message', (message: { ready?: boolean; id?: number; ok?: boolean; error?: string }) => {
        if (message.ready) {
          try {
            if (child.pid !== undefined) setPriority(child.pid, PRIORITY);
          } catch {
            // Not allowed to change priorities here: it runs at the server's.
          }
          resolve(child);
          return;
        }
        const waiting = message.id === undefined ? undefined : this.pending.get(message.id);
        if (!waiting) return;
        this.pending.delete(message.id!);
        if (message.ok) waiting.resolve();
        else waiting.reject(new Error(message.error ?? 'the converter failed'));
      });
      child.once('exit', (code, signal) => {
        const err = new Error(`the serving log's converter process exited (${signal ?? `code ${code}`})`);
        if (this.child === child) {
          this.child = undefined;
          this.ready = undefined;
        }
        for (const [id, p] of this.pending) {
          this.pending.delete(id);
          p.reject(err);
        }
        reject(err);
      });
      child.once('error', reject);
    });
    return this.ready;
  }
}
