// An SFU room of three replicas (room server processes sharing a real redis-server): a broadcaster on
// replica A reaches viewers on B and C through their own replicas' relays, which pull the stream from
// A's relay once each; when A dies, the broadcaster reconnects to another replica and every viewer's
// video comes back without a new peer connection.
import path from 'node:path';
import { Swarm } from '../src/bench/swarm.js';
import { BROADCASTER_KEY, metric, roomImageDir, relayBinary, waitFor } from './helpers.js';
import {
  RoundRobinProxy,
  startRedis,
  startReplicas,
  type RedisProcess,
  type RoomProcess,
} from './processes.js';

const SWARM = path.join(roomImageDir, 'media', 'dist', 'streamroom-swarm');
let redis: RedisProcess | undefined;
let rooms: RoomProcess[] = [];
let proxy: RoundRobinProxy | undefined;
let swarm: Swarm | undefined;

beforeAll(() => {
  relayBinary();
});

afterEach(async () => {
  await swarm?.close();
  await proxy?.close();
  await Promise.all(rooms.map((r) => r.crash()));
  await redis?.stop();
  swarm = undefined;
  proxy = undefined;
  redis = undefined;
  rooms = [];
});

/** Unique packets each viewer's current peer got since the last reset. */
async function packetsByViewer(s: Swarm): Promise<number[]> {
  const stats = await s.stats();
  const byPeer = new Map(stats.perViewer.map((v) => [v.id, v]));
  return s.viewers.map((v) => byPeer.get(v.peers[v.peers.length - 1] ?? '')?.packets ?? 0);
}

describe('an SFU room of three replicas', () => {
  it('forwards relay to relay, and survives the broadcaster\u2019s replica dying', async () => {
    redis = await startRedis();
    const started = await startReplicas(3, redis.url, { ROOM_MEDIA_MODE: 'SFU', ROOM_MAX_VIEWERS: '100' });
    rooms = started.rooms;
    const [a, b, c] = started.urls as [string, string, string];
    swarm = new Swarm(SWARM);
    // the broadcaster reaches the room through a Service-like proxy, first landing on A
    proxy = new RoundRobinProxy(started.rooms.map((_, i) => Number(new URL(started.urls[i]!).port)));
    const service = await proxy.listen();
    await swarm.publish(service, BROADCASTER_KEY);
    await swarm.addViewers(b, 5);
    await swarm.addViewers(c, 5);
    await swarm.addViewers(a, 2);
    await waitFor(async () => (await packetsByViewer(swarm!)).every((n) => n > 50), 30_000, 250);
    const peersBefore = swarm.viewers.map((v) => v.peers.length);

    // the relay of every replica takes the stream from the broadcaster's replica once, not per viewer
    const viewerCounts = await Promise.all(
      started.metricsUrls.map((u) => metric(u, 'streamroom_relay_viewers')),
    );
    // A: its 2 viewers and the two replicas that pull from it (the broadcaster landed on A: the proxy's
    // first backend); B and C: their 5 viewers each
    expect(viewerCounts).toEqual([4, 5, 5]);

    // the broadcaster's replica dies; the broadcaster reconnects through the proxy to B or C
    await rooms[0]!.crash();
    const killedAt = Date.now();
    await swarm.reset();
    const survivors = swarm.viewers.filter((v) => v.url !== a); // A's viewers lost their replica
    await waitFor(
      async () => {
        const counts = await packetsByViewer(swarm!);
        return swarm!.viewers.every((v, i) => v.url === a || counts[i]! > 20);
      },
      30_000,
      250,
    );
    const recoveredMs = Date.now() - killedAt;
    console.log(
      `broadcaster's replica killed: video back on every other replica's viewers in ${recoveredMs} ms`,
    );
    expect(recoveredMs).toBeLessThan(15_000);
    // the viewers on B and C kept their peer connection: only the relays' source changed
    expect(survivors.map((v) => v.peers.length)).toEqual(
      survivors.map((v) => peersBefore[swarm!.viewers.indexOf(v)]),
    );
  }, 120_000);
});
