/**
 * Requests and events over a child process's standard input and output, one JSON object per line: the
 * way the room server drives the media relay (and the benchmarks drive the viewer swarm). A request is
 * `{id, method, params}` and its answer `{id, result}` or `{id, error: {code, message}}`; a line
 * without an id is an event `{event, ...}`.
 */
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';

/** A request the child refused or could not answer, with its code. */
export class RpcError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'RpcError';
  }
}

export interface RpcEvent {
  event: string;
  [field: string]: unknown;
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export class ChildRpc extends EventEmitter<{ event: [RpcEvent]; unreadable: [string] }> {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closedReason: string | undefined;

  constructor(
    readonly child: ChildProcess,
    private readonly name: string,
  ) {
    super();
    child.stdin?.on('error', () => undefined); // a write after the child died: its exit says why
    createInterface({ input: child.stdout!, crlfDelay: Infinity }).on('line', (line) => this.onLine(line));
  }

  request<T>(method: string, params: Record<string, unknown> = {}, timeoutMs = 5000): Promise<T> {
    if (this.closedReason !== undefined || !this.child.stdin?.writable) {
      return Promise.reject(
        new RpcError('unavailable', `${this.name} is not running (${this.closedReason ?? 'no input'})`),
      );
    }
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RpcError('timeout', `${this.name} did not answer ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.child.stdin!.write(`${JSON.stringify({ id, method, params })}\n`);
    });
  }

  /** Fails every request still waiting (the child is gone). */
  close(reason: string): void {
    this.closedReason = reason;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new RpcError('unavailable', `${this.name} stopped (${reason})`));
    }
    this.pending.clear();
  }

  private onLine(line: string): void {
    let msg: { id?: number; result?: unknown; error?: { code?: string; message?: string }; event?: string };
    try {
      msg = JSON.parse(line) as typeof msg;
    } catch {
      this.emit('unreadable', line.slice(0, 200));
      return;
    }
    if (typeof msg.id === 'number') {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.error)
        p.reject(new RpcError(msg.error.code ?? 'internal', msg.error.message ?? `${this.name} error`));
      else p.resolve(msg.result ?? {});
    } else if (typeof msg.event === 'string') {
      // After the code waiting for an earlier answer has run: an offer the child answered goes out
      // before the candidates it writes right after it.
      setImmediate(() => this.emit('event', msg as RpcEvent));
    }
  }
}
