// The live poller (src/live.ts): what a /live answer is, when a change is written, and how often at most.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from '@jest/globals';
import {
  httpGetJson,
  idleLive,
  liveChange,
  LivePoller,
  parseLive,
  statusTime,
  type LiveFacts,
  type LiveRoom,
  type LiveStatus,
} from '../src/live.js';

const T0 = '2026-12-02T00:00:00Z';
const facts = (viewers: number, live = true, at = T0): LiveFacts => ({ live, viewers, lastActivityTime: at });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('parseLive', () => {
  it('takes what a room answers, times to whole seconds', () => {
    expect(
      parseLive({
        live: true,
        viewers: 3,
        broadcasterOnline: true,
        lastActivityTime: '2026-12-02T00:00:01.567Z',
      }),
    ).toEqual({ live: true, viewers: 3, lastActivityTime: '2026-12-02T00:00:01Z' });
  });
  it.each([
    [null],
    ['live'],
    [{ live: 'yes', viewers: 1, lastActivityTime: T0 }],
    [{ live: true, viewers: -1, lastActivityTime: T0 }],
    [{ live: true, viewers: 1.5, lastActivityTime: T0 }],
    [{ live: true, viewers: 1, lastActivityTime: 'yesterday' }],
    [{ live: true, viewers: 1 }],
  ])('refuses %j', (body) => expect(parseLive(body)).toBeUndefined());
  it('statusTime cuts milliseconds', () =>
    expect(statusTime(Date.UTC(2026, 0, 2, 3, 4, 5, 999))).toBe('2026-01-02T03:04:05Z'));
});

describe('liveChange', () => {
  const status: LiveStatus = { live: true, viewers: 100, lastActivityTime: T0 };
  it('writes nothing when live and viewers are as the status says, whatever the time of a busy room', () => {
    expect(liveChange(status, facts(100, true, '2026-12-02T00:05:00Z'))).toBeUndefined();
  });
  it('writes a new count, the first status, and on-air changes', () => {
    expect(liveChange(status, facts(150))).toEqual({ fields: facts(150), minor: false });
    expect(liveChange(undefined, facts(0, false))).toEqual({ fields: facts(0, false), minor: false });
    expect(liveChange(status, facts(100, false))?.minor).toBe(false);
  });
  it('calls a move of less than a tenth of a busy room minor', () => {
    expect(liveChange(status, facts(109))?.minor).toBe(true);
    expect(liveChange(status, facts(90))?.minor).toBe(false);
    expect(liveChange({ ...status, viewers: 3 }, facts(4))?.minor).toBe(false);
    expect(liveChange({ ...status, viewers: 1 }, facts(0))?.minor).toBe(false);
  });
  it('writes an empty room whose last visit moved', () => {
    const empty = { live: false, viewers: 0, lastActivityTime: T0 };
    expect(liveChange(empty, facts(0, false))).toBeUndefined();
    expect(liveChange(empty, facts(0, false, '2026-12-02T00:01:00Z'))?.fields.lastActivityTime).toBe(
      '2026-12-02T00:01:00Z',
    );
  });
  it('idleLive: a room without pods shows nobody, once', () => {
    expect(idleLive(status)).toEqual({ live: false, viewers: 0 });
    expect(idleLive({ live: false, viewers: 0, lastActivityTime: T0 })).toBeUndefined();
    expect(idleLive(undefined)).toBeUndefined();
  });
});

describe('LivePoller', () => {
  let poller: LivePoller | undefined;
  afterEach(() => poller?.stop());

  /** Rooms whose status is what the poller last wrote (a cache that keeps up), each with an audience. */
  function harness(n: number, opts: { pollSeconds: number; minWriteSeconds: number }) {
    const audience = new Map<string, LiveFacts>();
    const status = new Map<string, LiveStatus>();
    const writes: { key: string; fields: LiveStatus }[] = [];
    const serving = new Map<string, boolean>();
    for (let i = 0; i < n; i++) {
      audience.set(`ns/r${i}`, facts(10, true));
      serving.set(`ns/r${i}`, true);
    }
    const getJson = async (url: string) => {
      const f = audience.get(decodeURIComponent(new URL(url).pathname.slice(1)));
      if (!f) throw new Error('HTTP 404');
      return structuredClone(f);
    };
    poller = new LivePoller(
      {
        keys: () => [...audience.keys()],
        room: (key): LiveRoom => ({
          key,
          status: status.get(key),
          serving: serving.get(key) ?? false,
          url: `http://room.test/${encodeURIComponent(key)}`,
        }),
        write: async (key, fields) => {
          writes.push({ key, fields });
          status.set(key, { ...status.get(key), ...fields });
        },
        getJson,
      },
      { ...opts, concurrency: 4, timeoutMs: 1000 },
    );
    return { audience, status, writes, serving, poller };
  }

  it('coalesces a churning audience into at most one write per interval, the latest values last', async () => {
    const h = harness(3, { pollSeconds: 0.02, minWriteSeconds: 0.25 });
    h.poller.start();
    const started = Date.now();
    let v = 10;
    // the audience doubles and halves every 10 ms: every poll sees a major change
    while (Date.now() - started < 1500) {
      v = v === 10 ? 20 : 10;
      for (const k of h.audience.keys()) h.audience.set(k, facts(v));
      await sleep(10);
    }
    const elapsed = Date.now() - started;
    h.audience.set('ns/r0', facts(7, false));
    await sleep(600);
    for (const key of h.audience.keys()) {
      const n = h.writes.filter((w) => w.key === key).length;
      // one write per interval at most (plus the first), and writes did happen along the way
      expect(n).toBeLessThanOrEqual(Math.ceil((elapsed + 600) / 250) + 1);
      expect(n).toBeGreaterThanOrEqual(3);
    }
    expect(h.status.get('ns/r0')).toMatchObject({ live: false, viewers: 7 });
  }, 10_000);

  it('writes nothing while the audience stands still', async () => {
    const h = harness(5, { pollSeconds: 0.02, minWriteSeconds: 0.05 });
    h.poller.start();
    await sleep(300);
    expect(h.writes).toHaveLength(5); // each room's first status
    await sleep(500);
    expect(h.writes).toHaveLength(5);
    expect(h.poller.stats.polls).toBeGreaterThan(5 * 10);
  }, 10_000);

  it('writes a minor change later than a major one, and zero for a room that stopped serving', async () => {
    // minor changes wait 4 intervals (2 s) from the last write, major ones 1 (0.5 s): wide enough
    // margins that a loaded machine's late timers do not matter
    const h = harness(1, { pollSeconds: 0.02, minWriteSeconds: 0.5 });
    const until = async (what: string, check: () => boolean) => {
      for (const deadline = Date.now() + 5000; !check(); await sleep(20))
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    };
    h.audience.set('ns/r0', facts(100));
    h.poller.start();
    await until('the first write', () => h.writes.length === 1);
    const firstWrite = Date.now();
    h.audience.set('ns/r0', facts(105)); // minor
    await sleep(150);
    expect(h.status.get('ns/r0')?.viewers).toBe(100);
    await until('105 viewers', () => h.status.get('ns/r0')?.viewers === 105);
    expect(Date.now() - firstWrite).toBeGreaterThanOrEqual(1900);
    h.serving.set('ns/r0', false);
    const stopped = Date.now();
    await until('zero', () => h.status.get('ns/r0')?.live === false && h.status.get('ns/r0')?.viewers === 0);
    expect(Date.now() - stopped).toBeLessThan(1900); // major: sooner than a minor change
    const n = h.writes.length;
    await sleep(600);
    expect(h.writes).toHaveLength(n);
  }, 15_000);

  it('does not write the same change twice while the cache lags behind its write', async () => {
    const writes: LiveStatus[] = [];
    poller = new LivePoller(
      {
        keys: () => ['ns/a'],
        // the cache never shows the write
        room: (key) => ({ key, status: undefined, serving: true, url: 'http://room.test/a' }),
        write: async (_k, f) => void writes.push(f),
        getJson: async () => facts(4),
      },
      { pollSeconds: 0.02, minWriteSeconds: 0.01 },
    );
    poller.start();
    await sleep(300);
    expect(writes).toEqual([facts(4)]);
  });

  it('backs off from a room that does not answer, and writes nothing for it', async () => {
    let asked = 0;
    const writes: LiveStatus[] = [];
    poller = new LivePoller(
      {
        keys: () => ['ns/a'],
        room: (key) => ({ key, status: undefined, serving: true, url: 'http://room.test/a' }),
        write: async (_k, f) => void writes.push(f),
        getJson: async () => {
          asked++;
          throw new Error('HTTP 503');
        },
      },
      { pollSeconds: 0.02, minWriteSeconds: 0.01 },
    );
    poller.start();
    await sleep(600);
    expect(writes).toEqual([]);
    // doubling from 20 ms up to 8 intervals: far fewer than one poll per 20 ms
    expect(asked).toBeGreaterThanOrEqual(3);
    expect(asked).toBeLessThan(15);
  });
});

describe('httpGetJson', () => {
  it('reads JSON, refuses other answers, and gives up on a room that does not answer in time', async () => {
    const server = http.createServer((req, res) => {
      if (req.url === '/ok') return void res.writeHead(200).end(JSON.stringify(facts(2)));
      if (req.url === '/big') return void res.writeHead(200).end(`"${'x'.repeat(100_000)}"`);
      if (req.url === '/slow') return; // never answers
      res.writeHead(404).end('no');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      expect(await httpGetJson(`${base}/ok`, 1000)).toEqual(facts(2));
      await expect(httpGetJson(`${base}/missing`, 1000)).rejects.toThrow('HTTP 404');
      await expect(httpGetJson(`${base}/big`, 1000)).rejects.toThrow('too large');
      const started = Date.now();
      await expect(httpGetJson(`${base}/slow`, 300)).rejects.toThrow('no answer within 300 ms');
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
