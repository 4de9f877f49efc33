/**
 * The per-room Redis ACL users, against a real redis-server (Debian's, on 127.0.0.1) and the real
 * room server backplane (room-image/src/server/backplane.ts) running as room A.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createClient } from '@redis/client';
import { Server, type ServerOptions } from 'socket.io';
import { io as connectSocket } from 'socket.io-client';
import { redisKeyPrefix } from '../src/builders.js';
import {
  RedisAcl,
  RedisAclError,
  aclRules,
  aclUserName,
  roomKeyPrefix,
  roomRedisUrl,
} from '../src/redis-acl.js';
import { room } from './fixtures.js';

const REDIS_SERVER = '/usr/bin/redis-server';
const ADMIN_PASSWORD = 'admin-Secret/42';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

interface RedisProcess {
  adminUrl: string;
  stop(): Promise<void>;
}

/** redis-server on a free 127.0.0.1 port, without persistence, with an admin password. */
async function startRedis(): Promise<RedisProcess> {
  const port = await freePort();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'streamroom-acl-'));
  const child = spawn(
    REDIS_SERVER,
    [
      ...['--port', String(port), '--bind', '127.0.0.1', '--dir', dir],
      ...['--save', '', '--appendonly', 'no', '--requirepass', ADMIN_PASSWORD],
      // Let DEBUG and MODULE reach the ACL check (both are refused to everybody by default).
      ...['--enable-debug-command', 'yes', '--enable-module-command', 'yes'],
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${output}`)), 10_000);
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then(() => reject(new Error(`redis-server exited: ${output}`)));
  });
  return {
    // Database 1: the rooms' URLs keep it, so their clients SELECT it.
    adminUrl: `redis://:${encodeURIComponent(ADMIN_PASSWORD)}@127.0.0.1:${port}/1`,
    async stop() {
      child.kill('SIGKILL');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A client that never reconnects (a dropped connection stays dropped). */
function newClient(url: string) {
  const client = createClient({ url, socket: { reconnectStrategy: false, connectTimeout: 3000 } });
  client.on('error', () => undefined);
  return client;
}
type Client = ReturnType<typeof newClient>;
const clients: Client[] = [];

async function connect(url: string): Promise<Client> {
  const client = newClient(url);
  clients.push(client);
  await client.connect();
  return client;
}

/** The subset of room-image/src/server/backplane.ts and redis-state.ts this test drives. */
interface RoomBackplane {
  readonly state: {
    tryAddViewer(
      id: string,
      address: string,
      limits: { max: number; perAddress: number },
    ): Promise<'seated' | 'room_full' | 'address_full'>;
    removeViewer(id: string): Promise<void>;
    hasViewer(id: string): Promise<boolean>;
    viewerIds(): Promise<string[]>;
    setBroadcaster(id: string): Promise<string | undefined>;
    clearBroadcaster(id: string): Promise<boolean>;
    broadcaster(): Promise<string | undefined>;
    setLive(id: string, live: boolean): Promise<boolean>;
    presence(): Promise<{ viewers: number; broadcasterOnline: boolean; live: boolean }>;
    addMessage(message: ChatMessage, limits: { size: number; bytes: number }): Promise<void>;
    takeNewUserToken(address: string, perMinute: number): Promise<boolean>;
    history(): Promise<{ messages: ChatMessage[]; seq: number }>;
    publishChat(origin: string, messages: ChatMessage[]): Promise<void>;
    takeChatToken(userId: string, perMinute: number): Promise<boolean>;
    tick(sweep: boolean): Promise<{ readded: string[]; swept: string[] }>;
    release(): Promise<void>;
  };
  readonly adapter: ServerOptions['adapter'];
  unavailableReason(): string | undefined;
  close(): Promise<void>;
}
interface ChatMessage {
  id: string;
  name: string;
  role: 'broadcaster' | 'viewer';
  text: string;
  ts: number;
  seq?: number;
}
type CreateBackplane = (
  config: { url: string; keyPrefix: string },
  log: (level: string, msg: string, fields?: Record<string, unknown>) => void,
) => RoomBackplane;

/**
 * The room server's backplane, compiled from its source by ts-jest. Loaded by a computed
 * specifier: the operator's TypeScript project does not include the room image.
 */
async function loadCreateBackplane(): Promise<CreateBackplane> {
  const specifier = ['..', '..', 'room-image', 'src', 'server', 'backplane.js'].join('/');
  const mod = (await import(specifier)) as { createBackplane: CreateBackplane };
  return mod.createBackplane;
}

/** The room server's chat relay between replicas (room-image/src/server/chat-relay.ts). */
async function loadChatRelay() {
  const dir = ['..', '..', 'room-image', 'src', 'server'].join('/');
  const relay = (await import(`${dir}/chat-relay.js`)) as {
    startChatRelay(options: {
      url: string;
      stream: string;
      log: (level: string, msg: string, fields?: object) => void;
      onBatch: (messages: unknown[]) => void;
    }): { close(): Promise<void> };
  };
  const state = (await import(`${dir}/redis-state.js`)) as { chatStreamName(prefix: string): string };
  return { startChatRelay: relay.startChatRelay, chatStreamName: state.chatStreamName };
}

/** One replica of a room: its backplane and a socket.io server on it, as server.ts wires them. */
async function startReplica(createBackplane: CreateBackplane, url: string, keyPrefix: string) {
  const logs: string[] = [];
  const backplane = createBackplane({ url, keyPrefix }, (level, msg, fields) =>
    logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`),
  );
  const httpServer = createServer();
  const io = new Server(httpServer, { adapter: backplane.adapter, transports: ['websocket'] });
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  const { port } = httpServer.address() as net.AddressInfo;
  return {
    backplane,
    io,
    url: `http://127.0.0.1:${port}`,
    logs,
    async stop() {
      await io.close();
      await backplane.close();
    },
  };
}

describe('naming and rules', () => {
  it('names the user after the room and uses the same key prefix as the room', () => {
    expect(aclUserName('team-a', 'demo')).toBe('room:team-a:demo');
    expect(roomKeyPrefix('team-a', 'demo.v2')).toBe(redisKeyPrefix(room({}, 'demo.v2', 'team-a')));
    expect(() => aclUserName('team-a', 'a:b')).toThrow(/invalid room name "a:b"/);
    expect(() => aclUserName('Team', 'demo')).toThrow(/invalid room namespace "Team"/);
    expect(() => roomKeyPrefix('team-a', 'de*mo')).toThrow(/invalid room name/);
  });

  it("gives the room the admin URL's scheme, host, port and database with its own credentials", () => {
    const url = roomRedisUrl('rediss://:admin%2Fpw@redis.example:6380/2', 'team-a', 'demo', 'p@ss/w%rd:+');
    expect(url).toBe('rediss://room%3Ateam-a%3Ademo:p%40ss%2Fw%25rd%3A%2B@redis.example:6380/2');
    const parsed = new URL(url);
    expect(decodeURIComponent(parsed.username)).toBe('room:team-a:demo');
    expect(decodeURIComponent(parsed.password)).toBe('p@ss/w%rd:+');
    expect(roomRedisUrl('redis://redis:6379', 'ns', 'r', 'pw')).toBe('redis://room%3Ans%3Ar:pw@redis:6379');
    expect(() => roomRedisUrl('http://:secret@redis:6379', 'ns', 'r', 'pw')).toThrow(/redis:\/\//);
    expect(() => roomRedisUrl('not a url :secret', 'ns', 'r', 'pw')).toThrow(
      /^the shared Redis URL is not a URL$/,
    );
  });

  it('grants exactly the commands of the room server, on its prefix only', () => {
    expect(aclRules('streamroom:team-a:demo:')).toEqual([
      'resetkeys',
      '~streamroom:team-a:demo:*',
      'resetchannels',
      '&streamroom:team-a:demo:*',
      '-@all',
      ...['+hello', '+auth', '+select', '+client|setinfo', '+client|maint_notifications'],
      ...['+zrem', '+lrange', '+evalsha', '+eval', '+time', '+zadd', '+zscore', '+zcount', '+zcard'],
      ...['+zrangebyscore', '+zremrangebyscore', '+hget', '+hmget', '+hset', '+hincrby', '+hdel'],
      ...['+rpush', '+ltrim', '+del', '+pexpire', '+xadd', '+xread', '+xrevrange', '+publish', '+subscribe'],
    ]);
    const rules = aclRules('p:', ['client|maint_notifications']);
    expect(rules).toContain('+client|setinfo');
    expect(rules).not.toContain('+client|maint_notifications');
  });

  it('matches a prefix with glob characters literally and refuses spaces', () => {
    expect(aclRules('a*b?[c]\\:').slice(1, 4)).toEqual([
      '~a\\*b\\?\\[c\\]\\\\:*',
      'resetchannels',
      '&a\\*b\\?\\[c\\]\\\\:*',
    ]);
    expect(() => aclRules('has space:')).toThrow(/invalid Redis key prefix/);
    expect(() => aclRules('')).toThrow(/invalid Redis key prefix/);
  });
});

describe('RedisAcl against redis-server', () => {
  let redis: RedisProcess;
  let acl: RedisAcl;
  let admin: Client;
  const url = (name: string, password: string) => roomRedisUrl(redis.adminUrl, 'team', name, password);

  beforeAll(async () => {
    redis = await startRedis();
    admin = await connect(redis.adminUrl);
    acl = new RedisAcl(redis.adminUrl);
    // Room "ab" would share room "a"'s prefix if rules were by string prefix without the ':'.
    await acl.ensureUser('team', 'a', 'password-of-a');
    await acl.ensureUser('team', 'ab', 'password-of-ab');
  });

  afterAll(async () => {
    await acl?.close();
    for (const client of clients) if (client.isOpen) client.destroy();
    await redis?.stop();
  });

  it('lets the real room backplane of A work on its prefix without a single denial', async () => {
    await admin.aclLogReset();
    const createBackplane = await loadCreateBackplane();
    const prefix = roomKeyPrefix('team', 'a');
    const one = await startReplica(createBackplane, url('a', 'password-of-a'), prefix);
    const two = await startReplica(createBackplane, url('a', 'password-of-a'), prefix);
    try {
      await until('both backplanes connected as A', () =>
        [one, two].every((r) => r.backplane.unavailableReason() === undefined),
      );

      // Seats, broadcaster and presence, across the two replicas (the Lua scripts, EVALSHA/EVAL).
      const s1 = one.backplane.state;
      const s2 = two.backplane.state;
      const seats = { max: 3, perAddress: 2 };
      expect(await s1.tryAddViewer('v1', '192.0.2.1', seats)).toBe('seated');
      expect(await s2.tryAddViewer('v2', '192.0.2.1', seats)).toBe('seated');
      expect(await s2.tryAddViewer('v3', '192.0.2.1', seats)).toBe('address_full');
      expect(await s1.tryAddViewer('v3', '192.0.2.2', { max: 2, perAddress: 2 })).toBe('room_full');
      expect(await s1.takeNewUserToken('192.0.2.1', 1)).toBe(true);
      expect(await s2.takeNewUserToken('192.0.2.1', 1)).toBe(false);
      expect(await s2.hasViewer('v1')).toBe(true);
      expect((await s1.viewerIds()).sort()).toEqual(['v1', 'v2']);
      expect(await s1.setBroadcaster('b1')).toBeUndefined();
      expect(await s1.setLive('b1', true)).toBe(true);
      expect(await s2.broadcaster()).toBe('b1');
      expect(await s2.presence()).toEqual({ viewers: 2, broadcasterOnline: true, live: true });

      // Chat: history and the per-user rate limit.
      const message: ChatMessage = { id: 'm1', name: 'Ann', role: 'viewer', text: 'hi', ts: 1 };
      await s1.addMessage(message, { size: 50, bytes: 65536 });
      expect(await s2.history()).toEqual({ messages: [{ ...message, seq: 1 }], seq: 1 });
      // Chat between replicas: one stream entry per tick (XADD in a script), read by the others'
      // relays (XREVRANGE to start, then a blocking XREAD), as server.ts wires them.
      const received: unknown[] = [];
      const chatRelay = await loadChatRelay();
      const reader = chatRelay.startChatRelay({
        url: url('a', 'password-of-a'),
        stream: chatRelay.chatStreamName(prefix),
        log: (level: string, msg: string, fields?: object) =>
          two.logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`),
        onBatch: (messages: unknown[]) => received.push(...messages),
      });
      try {
        await until('a chat batch relayed from the other replica', async () => {
          await s1.publishChat('replica-one', [{ ...message, seq: 1 }]);
          return received.length > 0;
        });
      } finally {
        await reader.close();
      }
      expect(received[0]).toMatchObject({ id: 'm1', text: 'hi' });
      expect(await s2.takeChatToken('v1', 1)).toBe(true);
      expect(await s1.takeChatToken('v1', 1)).toBe(false);

      // The heartbeat with a sweep, then leaving.
      expect(await s1.tick(true)).toMatchObject({ readded: [], swept: [] });
      expect(await s2.tick(true)).toMatchObject({ readded: [], swept: [] });
      await s2.removeViewer('v2');
      expect(await s1.clearBroadcaster('b1')).toBe(true);
      await s1.release();
      expect(await s2.presence()).toEqual({ viewers: 0, broadcasterOnline: false, live: false });

      // Signaling to a socket on the other replica goes through the adapter's stream (XADD/XREAD).
      const socket = connectSocket(two.url, {
        transports: ['websocket'],
        reconnection: false,
        forceNew: true,
      });
      try {
        const signals: unknown[] = [];
        socket.on('signal', (s: unknown) => signals.push(s));
        let disconnected = false;
        socket.on('disconnect', () => (disconnected = true));
        await until('the socket connected', () => socket.connected);
        const id = socket.id ?? '';
        // The stream readers start at "$": repeat until they are reading.
        await until('a signal from the other replica', () => {
          one.io.to(id).emit('signal', { from: 'b1', pc: 1, data: 'offer' });
          return signals.length > 0;
        });
        expect(signals[0]).toEqual({ from: 'b1', pc: 1, data: 'offer' });

        // serverSideEmit goes through pub/sub (PUBLISH/SUBSCRIBE on the adapter's channels).
        let notified = 0;
        two.io.on('streamroom:presence', () => notified++);
        await until('a presence notification from the other replica', () => {
          one.io.serverSideEmit('streamroom:presence');
          return notified > 0;
        });

        // Disconnecting a socket held by the other replica (the signaling "replaced" path).
        one.io.in(id).disconnectSockets(true);
        await until('the socket disconnected by the other replica', () => disconnected);
      } finally {
        socket.disconnect();
      }

      const roomConnections = ((await admin.sendCommand(['CLIENT', 'LIST'])) as string)
        .split('\n')
        .filter((line) => line.includes(' user=room:team:a '));
      expect(roomConnections.length).toBeGreaterThanOrEqual(8); // 4 per replica, all as A
      expect(await admin.keys('*')).toEqual(expect.arrayContaining([`${prefix}chat`, `${prefix}sio`]));
      expect((await admin.keys('*')).filter((k) => !k.startsWith(prefix))).toEqual([]);
      expect(await admin.aclLog()).toEqual([]); // no command, key or channel denied
      expect([...one.logs, ...two.logs].join('\n')).not.toMatch(/NOPERM|failed/);
    } finally {
      await one.stop();
      await two.stop();
    }
  }, 20_000);

  it("keeps A out of B's keys and channels", async () => {
    const a = await connect(url('a', 'password-of-a'));
    const b = await connect(url('ab', 'password-of-ab'));
    const own = `${roomKeyPrefix('team', 'a')}chat`;
    const other = `${roomKeyPrefix('team', 'ab')}chat`;
    const otherStream = `${roomKeyPrefix('team', 'ab')}sio`;
    await b.sendCommand(['XADD', otherStream, '*', 'nsp', '/']);
    await b.sendCommand(['RPUSH', other, 'secret']);
    await expect(a.sendCommand(['LRANGE', own, '0', '-1'])).resolves.toEqual(expect.any(Array));

    for (const command of [
      ['GET', other],
      ['SET', other, 'x'],
      ['LRANGE', other, '0', '-1'],
      ['DEL', other],
      ['XREAD', 'STREAMS', otherStream, '0'],
      ['XADD', otherStream, '*', 'nsp', '/'],
      ['EVAL', "return redis.call('LRANGE', KEYS[1], 0, -1)", '1', other],
      ['PUBLISH', `${roomKeyPrefix('team', 'ab')}sio#/#`, 'x'],
      ['PUBLISH', 'streamroom:team:a', 'x'], // not under A's prefix (no trailing ':')
    ]) {
      await expect(a.sendCommand(command)).rejects.toThrow(/NOPERM/);
    }
    await expect(
      a.sendCommand(['EVAL', `return redis.call('LRANGE', '${other}', 0, -1)`, '0']),
    ).rejects.toThrow(/can't access at least one of the keys/);
    const subscriber = await connect(url('a', 'password-of-a'));
    await expect(
      subscriber.subscribe(`${roomKeyPrefix('team', 'ab')}sio#/#`, () => undefined),
    ).rejects.toThrow(/NOPERM/);
    expect(await b.sendCommand(['LRANGE', other, '0', '-1'])).toEqual(['secret']);
  });

  it('refuses A every dangerous or server-wide command', async () => {
    const a = await connect(url('a', 'password-of-a'));
    for (const command of [
      ['FLUSHALL'],
      ['FLUSHDB'],
      ['KEYS', '*'],
      ['SCAN', '0'],
      ['CONFIG', 'GET', '*'],
      ['SCRIPT', 'FLUSH'],
      ['SCRIPT', 'KILL'],
      ['SCRIPT', 'LOAD', 'return 1'],
      ['FUNCTION', 'FLUSH'],
      ['ACL', 'LIST'],
      ['ACL', 'SETUSER', 'room:team:a', '+@all'],
      ['CLIENT', 'LIST'],
      ['CLIENT', 'KILL', 'USER', 'room:team:ab'],
      ['MONITOR'],
      ['DEBUG', 'SLEEP', '0'],
      ['MODULE', 'LIST'],
      ['INFO'],
      ['PUBSUB', 'CHANNELS'],
      ['SSUBSCRIBE', `${roomKeyPrefix('team', 'a')}x`],
      ['SHUTDOWN', 'NOSAVE'],
    ]) {
      await expect(a.sendCommand(command)).rejects.toThrow(/NOPERM/);
    }
  });

  it('resets a tampered user to exactly its rules, idempotently', async () => {
    const user = aclUserName('team', 'a');
    const applied = await admin.sendCommand(['ACL', 'GETUSER', user]);
    await acl.ensureUser('team', 'a', 'password-of-a');
    expect(await admin.sendCommand(['ACL', 'GETUSER', user])).toEqual(applied);
    await admin.sendCommand(['ACL', 'SETUSER', user, '+flushall', '~*', '>extra-password']);
    await acl.ensureUser('team', 'a', 'password-of-a');
    expect(await admin.sendCommand(['ACL', 'GETUSER', user])).toEqual(applied);
    await expect(connect(url('a', 'extra-password'))).rejects.toThrow(/WRONGPASS/);
  });

  it('makes a changed password the only one that works', async () => {
    await acl.ensureUser('team', 'rotated', 'old-password');
    await (await connect(url('rotated', 'old-password'))).sendCommand(['TIME']);
    await acl.ensureUser('team', 'rotated', 'new-password');
    await expect(connect(url('rotated', 'old-password'))).rejects.toThrow(/WRONGPASS/);
    expect(await (await connect(url('rotated', 'new-password'))).sendCommand(['TIME'])).toHaveLength(2);
  });

  it('deletes the user, drops its connections and no longer lets its password in', async () => {
    await acl.ensureUser('team', 'gone', 'password-of-gone');
    const client = await connect(url('gone', 'password-of-gone'));
    const subscriber = await connect(url('gone', 'password-of-gone'));
    await subscriber.subscribe(`${roomKeyPrefix('team', 'gone')}sio#/#`, () => undefined);
    expect(await acl.deleteUser('team', 'gone')).toBe(true);
    await until('the connections dropped', () => !client.isReady && !subscriber.isReady);
    await expect(client.sendCommand(['TIME'])).rejects.toThrow();
    await expect(connect(url('gone', 'password-of-gone'))).rejects.toThrow(/WRONGPASS/);
    expect(await acl.deleteUser('team', 'gone')).toBe(false);
  });

  it('reconnects after its connection was killed', async () => {
    await admin.sendCommand(['CLIENT', 'KILL', 'USER', 'default']); // skips the caller itself
    await acl.ensureUser('team', 'after-kill', 'pw');
    expect(await acl.deleteUser('team', 'after-kill')).toBe(true);
  });

  it('names the operation and never a password when Redis refuses or does not answer', async () => {
    // (long enough for the first refused attempt to have happened, even on a busy machine)
    const wrongAdmin = new RedisAcl(redis.adminUrl.replace('admin-Secret', 'wrong-Secret'), {
      timeoutMs: 3000,
    });
    const refused = await wrongAdmin.ensureUser('team', 'a', 'room-password').catch((err: unknown) => err);
    await wrongAdmin.close();
    expect(refused).toBeInstanceOf(RedisAclError);
    expect((refused as Error).message).toMatch(
      /^creating or updating ACL user room:team:a failed: no answer from Redis within 3000 ms \(last connection error: WRONGPASS/,
    );

    const port = await freePort();
    const down = new RedisAcl(`redis://:${encodeURIComponent(ADMIN_PASSWORD)}@127.0.0.1:${port}`, {
      timeoutMs: 300,
    });
    const unreachable = await down.deleteUser('team', 'a').catch((err: unknown) => err);
    await down.close();
    expect((unreachable as Error).message).toMatch(
      /^deleting ACL user room:team:a failed: no answer from Redis within 300 ms \(last connection error: .*ECONNREFUSED/,
    );
    for (const err of [refused, unreachable]) {
      expect(String(err)).not.toMatch(/Secret|room-password/);
    }
    await expect(down.ensureUser('team', 'a', 'pw')).rejects.toThrow(
      /^creating or updating ACL user room:team:a failed: the Redis ACL client is closed$/,
    );
  });
});
