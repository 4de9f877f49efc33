/**
 * The headless viewer swarm (room-image/media: streamroom-swarm) driven through the room server's real
 * signaling path: every swarm peer is a socket.io client of the room, exactly like a browser page, and
 * only its WebRTC side lives in the Go process. Used by the media tests and `npm run bench:media`.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { io, type Socket } from 'socket.io-client';
import type { ClientToServerEvents, IceServer, ServerToClientEvents, SignalData } from '../protocol.js';
import { ChildRpc } from '../server/child-rpc.js';

type RoomSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/** Counters of one viewer, or of all of them (`aggregate`): see room-image/media/README.md. */
export interface SwarmViewerStats {
  id?: string;
  connected?: boolean;
  packets: number;
  lost: number;
  lossPct: number;
  delayP50Ms: number;
  delayP99Ms: number;
  bytes: number;
  /** Unix milliseconds of the first RTP packet and of the first video packet (0 before). */
  firstPacketAt: number;
  firstVideoAt: number;
}

export interface SwarmStats {
  viewers: number;
  connected: number;
  aggregate: SwarmViewerStats;
  perViewer: SwarmViewerStats[];
  publishers: {
    peer: string;
    connected: boolean;
    packets: number;
    keyframes: number;
    keyframeRequests: number;
    nacks: number;
  }[];
}

/** One swarm viewer: its socket, and when it joined (socket connected, before the welcome). */
export interface SwarmViewer {
  /** The room server it joined. */
  url: string;
  socket: RoomSocket;
  joinedAt: number;
  /** The swarm peer ids it had, oldest first (a new offer makes a new one). */
  peers: string[];
}

const newPc = (): string => randomBytes(6).toString('base64url');

export class Swarm {
  private readonly rpc: ChildRpc;
  /** swarm peer id -> where its local candidates go */
  private readonly routes = new Map<string, (data: SignalData) => void>();
  readonly viewers: SwarmViewer[] = [];
  private readonly sockets: RoomSocket[] = [];

  /** `ips`: the local addresses the swarm's peers gather candidates on (default 127.0.0.1). */
  constructor(binary: string, ips: string[] = []) {
    const child = spawn(
      binary,
      ips.map((ip) => `--ip=${ip}`),
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    this.rpc = new ChildRpc(child, 'the swarm');
    child.on('exit', (code, signal) =>
      this.rpc.close(signal ? `killed by ${signal}` : `exited with ${code}`),
    );
    this.rpc.on('event', (e) => {
      if (e.event === 'candidate' && typeof e['peer'] === 'string') {
        const candidate = e['candidate'] as Extract<SignalData, { type: 'candidate' }>['candidate'];
        this.routes.get(e['peer'])?.({ type: 'candidate', candidate });
      }
    });
  }

  request<T>(method: string, params: Record<string, unknown> = {}, timeoutMs = 15_000): Promise<T> {
    return this.rpc.request<T>(method, params, timeoutMs);
  }

  /** Connects a client; `wire` adds its handlers first, so no event right after the welcome is missed. */
  private connect(
    url: string,
    auth: Record<string, unknown>,
    wire: (s: RoomSocket) => void,
  ): Promise<RoomSocket> {
    const socket: RoomSocket = io(url, {
      auth,
      transports: ['websocket'],
      forceNew: true,
      reconnection: true,
    });
    this.sockets.push(socket);
    wire(socket);
    return new Promise((resolve, reject) => {
      socket.once('welcome', () => resolve(socket));
      socket.once('connect_error', (err: Error & { data?: { reason?: string } }) => {
        if (err.data?.reason) reject(new Error(`refused: ${err.data.reason}: ${err.message}`));
      });
    });
  }

  /**
   * A synthetic broadcaster (VP8 and Opus at `bitrate`) that publishes through the room's signaling,
   * and publishes again when the room asks (its relay restarted).
   */
  async publish(url: string, key: string, bitrate = 1_000_000): Promise<RoomSocket> {
    let current: { pc: string; peer: string } | undefined;
    const offer = async (socket: RoomSocket): Promise<void> => {
      if (current) await this.request('close', { id: current.peer }).catch(() => undefined);
      const { peer, sdp } = await this.request<{ peer: string; sdp: string }>('publish', { bitrate });
      const pc = newPc();
      current = { pc, peer };
      this.routes.set(peer, (data) => socket.emit('signal', { pc, data }));
      socket.emit('signal', { pc, data: { type: 'offer', sdp } });
      socket.emit('stream:state', { live: true });
    };
    const socket = await this.connect(url, { role: 'broadcaster', key, name: 'Swarm' }, (s) => {
      s.on('signal', (m) => {
        if (!current || m.pc !== current.pc) return;
        const { peer } = current;
        if (m.data.type === 'answer') void this.request('answer', { peer, sdp: m.data.sdp });
        else if (m.data.type === 'candidate')
          void this.request('candidate', { peer, candidate: m.data.candidate });
      });
      s.on('media:republish', () => void offer(s));
      // reconnected (its replica went away): publish again, as a page does
      let welcomes = 0;
      s.on('welcome', () => {
        if (welcomes++ > 0) void offer(s);
      });
    });
    await offer(socket);
    return socket;
  }

  /**
   * `n` viewers, `concurrency` joining at a time. Each answers whatever offer reaches it (from the
   * relay in an SFU room, from the broadcaster in a PeerToPeer one), on a new swarm peer per offer.
   */
  async addViewers(
    url: string,
    n: number,
    { concurrency = 20, relayOnly = false }: { concurrency?: number; relayOnly?: boolean } = {},
  ): Promise<SwarmViewer[]> {
    const added: SwarmViewer[] = [];
    const one = async (): Promise<void> => {
      const joinedAt = Date.now();
      const peers: string[] = [];
      let current: { pc: string; peer: string } | undefined;
      // relayOnly: the viewer's only candidates go through the TURN server the room's welcome names
      let iceServers: IceServer[] = [];
      const socket = await this.connect(url, { role: 'viewer' }, (client) =>
        client
          .on('welcome', (w) => (iceServers = w.iceServers))
          .on('signal', (s) => {
            if (s.data.type === 'offer') {
              const peer = `${client.id}/${s.pc}`;
              if (current) void this.request('close', { id: current.peer }).catch(() => undefined);
              current = { pc: s.pc, peer };
              peers.push(peer);
              const pc = s.pc;
              this.routes.set(peer, (data) => client.emit('signal', { pc, data }));
              const ice = relayOnly ? { iceServers, relayOnly } : {};
              void this.request<{ sdp: string }>('view', { id: peer, sdp: s.data.sdp, ...ice }).then(
                (a) => client.emit('signal', { pc, data: { type: 'answer', sdp: a.sdp } }),
                () => undefined,
              );
            } else if (s.data.type === 'candidate' && current?.pc === s.pc) {
              void this.request('candidate', { peer: current.peer, candidate: s.data.candidate }).catch(
                () => undefined,
              );
            }
          }),
      );
      const viewer: SwarmViewer = { url, socket, joinedAt, peers };
      added.push(viewer);
      this.viewers.push(viewer);
    };
    for (let i = 0; i < n; i += concurrency) {
      await Promise.all(Array.from({ length: Math.min(concurrency, n - i) }, one));
    }
    return added;
  }

  stats(): Promise<SwarmStats> {
    return this.request<SwarmStats>('stats');
  }

  reset(): Promise<void> {
    return this.request('reset');
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.close();
    const child = this.rpc.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.stdin?.end();
    const kill = setTimeout(() => child.kill('SIGKILL'), 3000);
    await gone;
    clearTimeout(kill);
  }
}
