/**
 * A TCP proxy of a test's own (node:net) between a client and a real server, that the test cuts
 * and restores:
 *   - `cut('reset')`: every proxied connection is reset, and new ones are reset as they arrive
 *     (the server went away);
 *   - `cut('blackhole')`: connections stay open and new ones are accepted, but nothing passes in
 *     either direction (a network partition); `restore()` lets what waited through, as a healed
 *     network does.
 * Nothing is changed on the real server.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

type Mode = 'forward' | 'reset' | 'blackhole';

interface Pair {
  client: Socket;
  upstream: Socket | undefined;
  toUpstream: Buffer[];
  toClient: Buffer[];
}

export class TcpProxy {
  private mode: Mode = 'forward';
  private readonly pairs = new Set<Pair>();
  /** Connections accepted so far. */
  accepted = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly target: { host: string; port: number },
  ) {}

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    let proxy!: TcpProxy;
    const server = createServer((client) => proxy.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    proxy = new TcpProxy(server, (server.address() as { port: number }).port, target);
    return proxy;
  }

  get open(): number {
    return this.pairs.size;
  }

  cut(how: 'reset' | 'blackhole'): void {
    this.mode = how;
    if (how === 'reset') for (const p of [...this.pairs]) this.drop(p);
  }

  restore(): void {
    this.mode = 'forward';
    for (const p of [...this.pairs]) {
      if (!p.upstream) this.connectUpstream(p);
      else this.flush(p);
    }
  }

  async close(): Promise<void> {
    for (const p of [...this.pairs]) this.drop(p);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    this.accepted++;
    client.on('error', () => {});
    if (this.mode === 'reset') {
      client.resetAndDestroy();
      return;
    }
    const pair: Pair = { client, upstream: undefined, toUpstream: [], toClient: [] };
    this.pairs.add(pair);
    client.on('data', (d: Buffer) => {
      if (this.mode === 'forward' && pair.upstream && !pair.upstream.connecting) pair.upstream.write(d);
      else pair.toUpstream.push(d);
    });
    // A side that ends ends the other (as the real server would see it); a reset or close drops both.
    client.on('end', () => pair.upstream?.end());
    client.on('close', () => this.drop(pair));
    if (this.mode === 'forward') this.connectUpstream(pair);
  }

  private connectUpstream(pair: Pair): void {
    const upstream = connect(this.target.port, this.target.host);
    pair.upstream = upstream;
    upstream.on('error', () => {});
    upstream.on('connect', () => this.flush(pair));
    upstream.on('data', (d: Buffer) => {
      if (this.mode === 'forward') pair.client.write(d);
      else pair.toClient.push(d);
    });
    upstream.on('end', () => {
      if (this.mode === 'forward') pair.client.end();
    });
    upstream.on('close', () => this.drop(pair));
  }

  private flush(pair: Pair): void {
    if (this.mode !== 'forward' || !pair.upstream || pair.upstream.connecting) return;
    for (const d of pair.toUpstream.splice(0)) pair.upstream.write(d);
    for (const d of pair.toClient.splice(0)) pair.client.write(d);
  }

  private drop(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    if (!pair.client.destroyed) {
      if (this.mode === 'reset') pair.client.resetAndDestroy();
      else pair.client.destroySoon();
    }
    if (pair.upstream && !pair.upstream.destroyed) pair.upstream.destroy();
  }
}
