/**
 * GET /live on the metrics port (src/server/live.ts): the room's live facts for the operator,
 * room-wide: from one replica in memory, and from two replicas sharing a real Redis.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { BROADCASTER_KEY, closeAllClients, connect, sleep, start, waitFor } from './helpers.js';
import { startRedis, startReplicas, type RedisProcess, type RoomProcess } from './processes.js';
import type { RunningServer } from '../src/server/server.js';
import { ACTIVITY_TICK_MS } from '../src/server/live.js';

interface Live {
  live: boolean;
  viewers: number;
  broadcasterOnline: boolean;
  lastActivityTime: string;
}

let server: RunningServer | undefined;
let redis: RedisProcess | undefined;
let rooms: RoomProcess[] = [];

afterEach(async () => {
  closeAllClients();
  await server?.close();
  server = undefined;
  await Promise.all(rooms.map((r) => r.crash()));
  rooms = [];
  await redis?.stop();
  redis = undefined;
});

async function live(metricsUrl: string): Promise<Live> {
  const res = await fetch(`${metricsUrl}/live`);
  expect(res.status).toBe(200);
  expect(res.headers.get('cache-control')).toBe('no-store');
  return (await res.json()) as Live;
}

const at = (l: Live) => Date.parse(l.lastActivityTime);

describe('GET /live', () => {
  it('says who is there and when somebody last was, on one replica', async () => {
    const before = Date.now();
    server = await start();
    const idle = await live(server.metricsUrl);
    // nobody came yet: the server's start is the last activity
    expect(idle).toEqual({
      live: false,
      viewers: 0,
      broadcasterOnline: false,
      lastActivityTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    });
    expect(at(idle)).toBeGreaterThanOrEqual(before);
    expect(at(idle)).toBeLessThanOrEqual(Date.now());
    // not on the public port
    expect((await fetch(`${server.url}/live`)).status).toBe(404);

    await sleep(1100);
    const { socket: broadcaster } = await connect(server.url, { role: 'broadcaster', key: BROADCASTER_KEY });
    const { socket: viewer } = await connect(server.url, { role: 'viewer', name: 'Vera' });
    broadcaster.emit('stream:state', { live: true });
    await waitFor(async () => (await live(server!.metricsUrl)).live);
    const busy = await live(server.metricsUrl);
    expect(busy).toMatchObject({ live: true, viewers: 1, broadcasterOnline: true });
    // somebody is there: the last activity is now
    expect(Date.now() - at(busy)).toBeLessThan(500);

    viewer.close();
    broadcaster.close();
    await waitFor(
      async () =>
        (await live(server!.metricsUrl)).viewers === 0 && !(await live(server!.metricsUrl)).broadcasterOnline,
    );
    const left = Date.now();
    const after = await live(server.metricsUrl);
    expect(after).toMatchObject({ live: false, viewers: 0, broadcasterOnline: false });
    // when they were last seen (sampled every tick), and it stays there
    expect(at(after)).toBeGreaterThan(at(idle));
    expect(left - at(after)).toBeLessThanOrEqual(ACTIVITY_TICK_MS + 500);
    await sleep(ACTIVITY_TICK_MS + 500);
    expect((await live(server.metricsUrl)).lastActivityTime).toBe(after.lastActivityTime);
  }, 20_000);

  it('answers the same on every replica of a room that shares a Redis', async () => {
    redis = await startRedis();
    const started = await startReplicas(2, redis.url);
    rooms = started.rooms;
    const [urlA] = started.urls as [string, string];
    const [metricsA, metricsB] = started.metricsUrls as [string, string];
    const { socket: viewer } = await connect(urlA, { role: 'viewer', name: 'Vera' });
    await waitFor(async () => (await live(metricsB)).viewers === 1, 5000);
    // seen on A, told by B: now
    expect(Date.now() - at(await live(metricsB))).toBeLessThan(500);
    await sleep(ACTIVITY_TICK_MS + 200);
    viewer.close();
    await waitFor(
      async () => (await live(metricsA)).viewers === 0 && (await live(metricsB)).viewers === 0,
      5000,
    );
    const [a, b] = [await live(metricsA), await live(metricsB)];
    expect(a.lastActivityTime).toBe(b.lastActivityTime);
    expect(Date.now() - at(a)).toBeLessThan(ACTIVITY_TICK_MS + 1500);
    // a replica that starts later does not make the room younger than its activity, nor older
    const third = await startReplicas(1, redis.url);
    rooms.push(...third.rooms);
    const metricsC = third.metricsUrls[0]!;
    expect(at(await live(metricsC))).toBeGreaterThan(at(a));
    await waitFor(
      async () => (await live(metricsA)).lastActivityTime === (await live(metricsC)).lastActivityTime,
      5000,
    );
    expect(at(await live(metricsA))).toBeGreaterThan(at(a));
  }, 40_000);
});
