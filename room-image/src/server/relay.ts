/**
 * The media relay as a child process of the room server (room-image/media: streamroom-relay): started
 * with the room's relay settings, driven through its standard input and output (one JSON object per
 * line; see room-image/media/README.md), restarted with backoff when it exits, and stopped with the
 * room server. Only this process can reach the relay's control: it has no socket of its own.
 */
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { ChildRpc, RpcError } from './child-rpc.js';
import type { RelayConfig } from './config.js';
import type { Log } from './log.js';

export { RpcError as RelayError };

export interface IceCandidate {
  candidate: string;
  sdpMid: string | null;
  sdpMLineIndex: number | null;
}

/** The relay's counters (`stats`), for /metrics. */
export interface RelayStats {
  viewers: number;
  peers: number;
  sourceConnected: boolean;
  bitrateIn: number;
  bitrateOut: number;
  packetsIn: number;
  packetsOut: number;
  packetsDropped: number;
  lostIn: number;
  nacksIn: number;
  nacksOut: number;
  retransmits: number;
  keyframeRequestsIn: number;
  keyframeRequestsOut: number;
  cpuSeconds: number;
  rssBytes: number;
}

export interface RelayEvents {
  /** The relay is listening (again): every peer it had is gone after a restart. */
  up: [ports: { udpPort: number; tcpPort: number }];
  down: [reason: string];
  candidate: [peer: string, candidate: IceCandidate];
  state: [peer: string, state: 'connected' | 'failed' | 'closed'];
}

/** What the relay writes without an id (see room-image/media/README.md). */
interface RelayEvent {
  event: string;
  peer?: string;
  candidate?: IceCandidate;
  state?: 'connected' | 'failed' | 'closed';
  udpPort?: number;
  tcpPort?: number;
}

const REQUEST_TIMEOUT_MS = 5000;
const RESTART_MIN_MS = 250;
const RESTART_MAX_MS = 5000;
/** A relay that ran this long before exiting restarts at the shortest delay again. */
const STABLE_MS = 30_000;

export class RelayProcess extends EventEmitter<RelayEvents> {
  private rpc: ChildRpc | undefined;
  private up = false;
  private stopping = false;
  private restartDelay = RESTART_MIN_MS;
  private restartTimer: NodeJS.Timeout | undefined;
  private startedAt = 0;
  /** Times the relay exited unexpectedly (for metrics and tests). */
  restarts = 0;

  constructor(
    private readonly config: RelayConfig,
    private readonly log: Log,
    private readonly maxPeers: number,
  ) {
    super();
  }

  /** Whether the relay is running and has said it listens. */
  get running(): boolean {
    return this.up;
  }

  /** The relay's process id (tests kill it to check recovery). */
  get pid(): number | undefined {
    return this.rpc?.child.pid;
  }

  start(): void {
    if (this.rpc || this.stopping) return;
    const c = this.config;
    const args = [
      `--udp-port=${c.udpPort}`,
      `--tcp-port=${c.tcpPort}`,
      `--listen-address=${c.listenAddress}`,
      `--max-peers=${this.maxPeers}`,
      ...c.announceAddresses.map((a) => `--announce-address=${a}`),
      ...(c.includeLoopback ? ['--include-loopback'] : []),
    ];
    this.startedAt = Date.now();
    // stderr (the relay's JSON logs) goes straight to ours, so it lands in the pod's log.
    const child = spawn(c.path, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    const rpc = new ChildRpc(child, 'the media relay');
    this.rpc = rpc;
    child.on('error', (err) => this.exited(rpc, `could not start ${c.path}: ${err.message}`));
    child.on('exit', (code, signal) =>
      this.exited(rpc, signal ? `killed by ${signal}` : `exited with ${code}`),
    );
    rpc.on('unreadable', (line) => this.log.warn({ line }, 'unreadable line from the media relay'));
    rpc.on('event', (e) => this.onEvent(e as RelayEvent));
  }

  /** Sends one request; rejects with RelayError when the relay refuses it, or when it is not running. */
  request<T>(
    method: string,
    params: Record<string, unknown> = {},
    timeoutMs = REQUEST_TIMEOUT_MS,
  ): Promise<T> {
    if (!this.up || !this.rpc)
      return Promise.reject(new RpcError('unavailable', 'the media relay is not running'));
    return this.rpc.request<T>(method, params, timeoutMs);
  }

  stats(): Promise<RelayStats> {
    return this.request<RelayStats>('stats');
  }

  /** Stops the relay: closes its input (it exits by itself), then kills it if it has not gone in 2 s. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const child = this.rpc?.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    child.stdin?.end();
    const kill = setTimeout(() => child.kill('SIGKILL'), 2000);
    await gone;
    clearTimeout(kill);
  }

  private onEvent(e: RelayEvent): void {
    switch (e.event) {
      case 'ready':
        this.up = true;
        this.log.info({ udpPort: e.udpPort, tcpPort: e.tcpPort, pid: this.pid }, 'media relay listening');
        this.emit('up', { udpPort: e.udpPort ?? 0, tcpPort: e.tcpPort ?? 0 });
        break;
      case 'candidate':
        if (e.peer && e.candidate) this.emit('candidate', e.peer, e.candidate);
        break;
      case 'state':
        if (e.peer && e.state) this.emit('state', e.peer, e.state);
        break;
    }
  }

  private exited(rpc: ChildRpc, reason: string): void {
    if (this.rpc !== rpc) return;
    this.rpc = undefined;
    rpc.close(reason);
    const wasUp = this.up;
    this.up = false;
    if (this.stopping) return;
    this.restarts++;
    if (Date.now() - this.startedAt > STABLE_MS) this.restartDelay = RESTART_MIN_MS;
    this.log.warn({ reason, retryInMs: this.restartDelay }, 'media relay stopped, restarting');
    if (wasUp) this.emit('down', reason);
    this.restartTimer = setTimeout(() => this.start(), this.restartDelay);
    this.restartDelay = Math.min(this.restartDelay * 2, RESTART_MAX_MS);
  }
}
