/**
 * SFU rooms with several replicas: the relays of one room forward to each other, so that a viewer on
 * any replica gets the stream from its own replica's relay, and the broadcaster's stream crosses the
 * pod network once per replica that needs it (not once per viewer).
 *
 * A replica that has viewers of its own while the broadcaster is connected elsewhere pulls the stream:
 * it asks the other replicas (through the backplane) for it; the replica that holds the broadcaster
 * answers with its relay's offer (a `subscribe`, as for a viewer), and the puller's relay takes that
 * offer as its source (a `publish`, as for a broadcaster). Offers, answers and ICE candidates travel
 * as server-to-server events; the media goes relay to relay. When the broadcaster moves to another
 * replica (a reload, its pod went away), pullers pull from the new one, and their viewers keep their
 * connections: the relay switches its source underneath. A replica that no longer needs the stream
 * (no viewer left, or the broadcaster came to it) drops its pull.
 */
import { randomBytes } from 'node:crypto';
import type { RoomServer, RoomSocket } from './context.js';
import type { Log } from './log.js';
import type { IceCandidate, RelayProcess } from './relay.js';
import type { RoomState } from './state.js';

/** Peer ids in the relay: the puller's source (`up/<pull>`) and the serving replica's viewer (`pull/<pull>`). */
export const UP = 'up/';
export const PULL = 'pull/';

/** An answer to a pull must come this soon, or the puller asks again. */
const PULL_TIMEOUT_MS = 5000;
/** The puller re-checks this often whether it still needs, or already has, the stream. */
const CHECK_INTERVAL_MS = 2000;

/** What the replicas of one room tell each other about pulls (socket.io server-to-server events). */
export interface MeshEvents {
  'media:pull'(m: { from: string; pull: string }): void;
  'media:offer'(m: { to: string; from: string; pull: string; sdp: string }): void;
  'media:answer'(m: { to: string; pull: string; sdp: string }): void;
  'media:candidate'(m: { to: string; pull: string; candidate: IceCandidate }): void;
  'media:drop'(m: { to: string; pull: string }): void;
}

export interface Mesh {
  /** Checks now whether this replica needs to pull (or drop) the stream. */
  check(): void;
  /** A relay event about a peer of the mesh (`up/` or `pull/`); false when the peer is not the mesh's. */
  onRelayEvent(peer: string, e: { candidate?: IceCandidate; state?: string }): boolean;
  /** The relay restarted: every pull and served pull is gone. */
  reset(): void;
  close(): void;
}

export function createMesh(ctx: { io: RoomServer; state: RoomState; relay: RelayProcess; log: Log }): Mesh {
  const { io, state, relay, log } = ctx;
  const self = randomBytes(8).toString('base64url');
  /** This replica's pull: whom it asked (the broadcaster's socket), and from which replica the offer came. */
  let upstream:
    | {
        pull: string;
        broadcaster: string;
        from?: string;
        connected: boolean;
        at: number;
        /** The relay has taken the offer (candidates wait for it). */
        taken?: Promise<unknown>;
      }
    | undefined;
  /** Pulls this replica serves: pull id -> the replica that pulls. */
  const served = new Map<string, string>();
  let checking = false;
  let again = false;

  const localSockets = () => io.of('/').sockets.values() as IterableIterator<RoomSocket>;
  const emit = <E extends keyof MeshEvents>(event: E, ...args: Parameters<MeshEvents[E]>) =>
    io.serverSideEmit(event, ...args);

  const drop = (reason: string): void => {
    if (!upstream) return;
    const { pull, from } = upstream;
    upstream = undefined;
    log.info({ reason }, 'dropping the pulled stream');
    void relay.request('close', { peer: UP + pull }).catch(() => undefined);
    if (from) emit('media:drop', { to: from, pull });
  };

  const check = async (): Promise<void> => {
    const broadcaster = await state.broadcaster();
    let viewers = false;
    let broadcasterHere = false;
    for (const s of localSockets()) {
      if (s.data.role === 'viewer') viewers = true;
      else if (s.id === broadcaster) broadcasterHere = true;
    }
    const needed = broadcaster !== undefined && !broadcasterHere && viewers && relay.running;
    if (!needed) return drop(broadcasterHere ? 'the broadcaster is here' : 'not needed here');
    const stale =
      upstream &&
      (upstream.broadcaster !== broadcaster ||
        (!upstream.from && Date.now() - upstream.at > PULL_TIMEOUT_MS));
    if (stale) drop('the broadcaster moved, or no replica answered');
    if (upstream) return;
    const pull = randomBytes(8).toString('base64url');
    upstream = { pull, broadcaster: broadcaster!, connected: false, at: Date.now() };
    log.info({ pull }, "pulling the stream from the broadcaster's replica");
    emit('media:pull', { from: self, pull });
  };

  const runCheck = (): void => {
    if (checking) {
      again = true;
      return;
    }
    checking = true;
    check()
      .catch((err: unknown) => log.warn({ err }, 'checking the pulled stream failed'))
      .finally(() => {
        checking = false;
        if (again) {
          again = false;
          runCheck();
        }
      });
  };

  // The replica with the broadcaster serves pulls.
  io.on('media:pull', (m) => {
    void (async () => {
      if (m.from === self || !relay.running) return;
      const broadcaster = await state.broadcaster();
      if (broadcaster === undefined || !io.of('/').sockets.has(broadcaster)) return;
      served.set(m.pull, m.from);
      const { sdp } = await relay.request<{ sdp: string }>('subscribe', { peer: PULL + m.pull });
      emit('media:offer', { to: m.from, from: self, pull: m.pull, sdp });
    })().catch((err: unknown) => log.warn({ err }, 'serving a pull failed'));
  });
  io.on('media:offer', (m) => {
    if (m.to !== self || upstream?.pull !== m.pull || upstream.from) return;
    upstream.from = m.from;
    upstream.taken = relay
      .request<{ sdp: string }>('publish', { peer: UP + m.pull, sdp: m.sdp })
      .then(({ sdp }) => emit('media:answer', { to: m.from, pull: m.pull, sdp }))
      .catch((err: unknown) => {
        log.warn({ err }, 'taking the pulled stream failed');
        drop('publish failed');
      });
  });
  io.on('media:answer', (m) => {
    if (m.to !== self || !served.has(m.pull)) return;
    void relay.request('answer', { peer: PULL + m.pull, sdp: m.sdp }).catch(() => undefined);
  });
  io.on('media:candidate', (m) => {
    if (m.to !== self) return;
    const add = (peer: string) =>
      void relay.request('candidate', { peer, candidate: m.candidate }).catch(() => undefined);
    if (served.has(m.pull)) add(PULL + m.pull);
    else if (upstream?.pull === m.pull) void upstream.taken?.then(() => add(UP + m.pull));
  });
  io.on('media:drop', (m) => {
    if (m.to !== self || !served.delete(m.pull)) return;
    void relay.request('close', { peer: PULL + m.pull }).catch(() => undefined);
  });

  const timer = setInterval(runCheck, CHECK_INTERVAL_MS);
  timer.unref();

  return {
    check: runCheck,
    onRelayEvent(peer, e) {
      let pull: string;
      let to: string | undefined;
      if (peer.startsWith(PULL)) {
        pull = peer.slice(PULL.length);
        to = served.get(pull);
        if (e.state === 'failed' || e.state === 'closed') served.delete(pull);
      } else if (peer.startsWith(UP)) {
        pull = peer.slice(UP.length);
        if (upstream?.pull !== pull) return true;
        to = upstream.from;
        if (e.state === 'connected') upstream.connected = true;
        if (e.state === 'failed' || e.state === 'closed') {
          upstream = undefined;
          runCheck();
        }
      } else {
        return false;
      }
      if (e.candidate && to) emit('media:candidate', { to, pull, candidate: e.candidate });
      return true;
    },
    reset() {
      upstream = undefined;
      served.clear();
      runCheck();
    },
    close() {
      clearInterval(timer);
      drop('closing');
    },
  };
}
