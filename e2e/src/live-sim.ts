// Simulated rooms' GET /live for the operator on kwok (whose pods run nothing): one HTTP server on
// 127.0.0.1 answers for every room (the operator's test-only --live-url-template points at it), with
// audiences that change on a schedule. Used by e2e/test/live-status.test.ts and e2e/bench/live.bench.ts.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Cluster } from './cluster.js';

export interface SimFacts {
  live: boolean;
  viewers: number;
  lastActivityTime: string;
}

/** A small deterministic PRNG (mulberry32), so a run's audiences can be repeated. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface LiveSim {
  /** The template for --live-url-template. */
  template: string;
  /** Every room's facts now, by `namespace/name`. */
  rooms: Map<string, SimFacts>;
  /** /live requests answered. */
  requests: number;
  /**
   * Changes every room's audience every `everyMs` (±50 %): viewers move by up to a fifth (at least
   * 1), a room on air goes off now and then and back. Stops with stop().
   */
  churn(everyMs: number): void;
  /** Stops changing audiences (the server keeps answering). */
  freeze(): void;
  close(): Promise<void>;
}

export async function startLiveSim(keys: string[], seed = 15): Promise<LiveSim> {
  const random = prng(seed);
  const now = () => new Date().toISOString();
  const rooms = new Map<string, SimFacts>(
    keys.map((k) => [
      k,
      { live: random() < 0.7, viewers: Math.floor(random() * 200), lastActivityTime: now() },
    ]),
  );
  let timers: NodeJS.Timeout[] = [];
  const sim: LiveSim = {
    template: '',
    rooms,
    requests: 0,
    churn(everyMs) {
      for (const key of keys) {
        const step = () => {
          const f = rooms.get(key)!;
          const delta = Math.max(1, Math.floor(f.viewers / 5));
          const viewers = Math.max(0, f.viewers + Math.round((random() * 2 - 1) * delta) || 1);
          const live = random() < 0.05 ? !f.live : f.live;
          rooms.set(key, { live, viewers, lastActivityTime: now() });
          timers.push(setTimeout(step, everyMs * (0.5 + random())));
        };
        timers.push(setTimeout(step, everyMs * random()));
      }
    },
    freeze() {
      timers.forEach(clearTimeout);
      timers = [];
    },
    async close() {
      sim.freeze();
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
    },
  };
  const server: Server = createServer((req, res) => {
    const m = /^\/live\/([^/]+)\/([^/]+)$/.exec(req.url ?? '');
    const f = m ? rooms.get(`${decodeURIComponent(m[1]!)}/${decodeURIComponent(m[2]!)}`) : undefined;
    if (!f) {
      res.writeHead(404).end();
      return;
    }
    sim.requests++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(f));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  sim.template = `http://127.0.0.1:${(server.address() as AddressInfo).port}/live/{namespace}/{name}`;
  return sim;
}

/** Every room's live fields as the API server has them, by `namespace/name`. */
export async function liveStatuses(
  cluster: Cluster,
  namespace: string,
): Promise<Map<string, { live?: boolean; viewers?: number; lastActivityTime?: string; phase?: string }>> {
  const list = JSON.parse(await cluster.kubectl(['get', 'streamrooms', '-n', namespace, '-o', 'json'])) as {
    items: {
      metadata: { name: string };
      status?: { live?: boolean; viewers?: number; lastActivityTime?: string; phase?: string };
    }[];
  };
  return new Map(list.items.map((r) => [`${namespace}/${r.metadata.name}`, r.status ?? {}]));
}

/** N rooms of one pod each (PeerToPeer, max 1: no Redis, no media port), as one List. */
export function simpleRooms(namespace: string, n: number): object {
  return {
    apiVersion: 'v1',
    kind: 'List',
    items: Array.from({ length: n }, (_, i) => ({
      apiVersion: 'streamroom.dev/v1alpha1',
      kind: 'StreamRoom',
      metadata: { name: `room-${i}`, namespace },
      spec: { image: 'streamroom/room:test', media: { mode: 'PeerToPeer' }, replicas: { min: 1, max: 1 } },
    })),
  };
}
