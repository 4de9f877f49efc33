/**
 * Memory and fairness bounds against hostile visitors: chat history by bytes, clients that stop
 * reading, viewer seats and new user ids per client address.
 */
import { readFileSync } from 'node:fs';
import { addressKey, clientKey } from '../src/server/address.js';
import { createLogger } from '../src/server/log.js';
import type { RunningServer } from '../src/server/server.js';
import { closeAllClients, collect, collectChat, connect, metric, sleep, start, waitFor } from './helpers.js';
import { startRoom, type RoomProcess } from './processes.js';
import { wireConnect, type WireClient } from './wire.js';

type Message = { id: string; name: string; role: string; text: string; ts: number };
type Ack = { ok: boolean; error?: string; message?: Message };
type ChatWelcome = { history: Message[] };

let server: RunningServer | undefined;
let room: RoomProcess | undefined;
const wires: WireClient[] = [];

afterEach(async () => {
  closeAllClients();
  for (const w of wires.splice(0)) w.close();
  await server?.close();
  server = undefined;
  await room?.crash();
  room = undefined;
});

/** 5000 characters of 4 UTF-8 bytes each (2 UTF-16 units): the worst case per character. */
const CLEF = '\u{1D11E}';
const utf8 = (m: unknown): number => Buffer.byteLength(JSON.stringify(m));

function refusal(p: Promise<unknown>): Promise<{ reason?: string; message?: string }> {
  return p.then(
    () => {
      throw new Error('expected the connection to be refused');
    },
    (err: Error & { data?: { reason?: string; message?: string } }) => err.data ?? {},
  );
}

describe('chat history', () => {
  it('stays under 256 KiB of UTF-8 by default, whatever the message count allows', async () => {
    server = await start({
      CHAT_HISTORY_SIZE: '1000',
      CHAT_MAX_MESSAGE_LENGTH: '5000',
      CHAT_MESSAGES_PER_MINUTE: '100',
    });
    const a = await connect(server.url, { role: 'viewer' });
    const sent: Message[] = [];
    for (let i = 0; i < 20; i++) {
      const ack = (await a.socket.emitWithAck('chat:send', { text: `${i} ${CLEF.repeat(4990)}` })) as Ack;
      expect(ack.ok).toBe(true);
      sent.push(ack.message!);
    }
    // Characters are counted as the CRD counts them (code points), not UTF-16 units.
    expect(await a.socket.emitWithAck('chat:send', { text: CLEF.repeat(5000) })).toMatchObject({ ok: true });
    expect(await a.socket.emitWithAck('chat:send', { text: CLEF.repeat(5001) })).toEqual({
      ok: false,
      error: 'too_large',
    });
    const history = ((await connect(server.url, { role: 'viewer' })).welcome['chat'] as ChatWelcome).history;
    const bytes = history.reduce((sum, m) => sum + utf8(m), 0);
    console.log(`history: ${history.length} of 21 messages, ${bytes} bytes`);
    expect(bytes).toBeLessThanOrEqual(256 * 1024);
    expect(history.length).toBeGreaterThanOrEqual(12);
    expect(history.at(-2)!.id).toBe(sent.at(-1)!.id); // the newest are kept, in order
  });

  it('keeps exactly the newest messages that fit in CHAT_HISTORY_MAX_BYTES', async () => {
    server = await start({
      CHAT_HISTORY_MAX_BYTES: '65536',
      CHAT_MAX_MESSAGE_LENGTH: '5000',
      CHAT_MESSAGES_PER_MINUTE: '100',
    });
    const a = await connect(server.url, { role: 'viewer', name: 'Ann' });
    const sent: Message[] = [];
    for (let i = 0; i < 12; i++) {
      const ack = (await a.socket.emitWithAck('chat:send', { text: CLEF.repeat(1000 + i * 100) })) as Ack;
      sent.push(ack.message!);
    }
    let fit = 0;
    for (let bytes = 0, i = sent.length - 1; i >= 0 && (bytes += utf8(sent[i])) <= 65536; i--) fit++;
    const history = ((await connect(server.url, { role: 'viewer' })).welcome['chat'] as ChatWelcome).history;
    expect(history.map((m) => m.id)).toEqual(sent.slice(-fit).map((m) => m.id));
  });
});

describe('clients that stop reading', () => {
  it('are disconnected once 2 MiB wait for them; readers get everything', async () => {
    const lines: string[] = [];
    server = await start(
      { CHAT_MAX_MESSAGE_LENGTH: '5000', CHAT_MESSAGES_PER_MINUTE: '6000' },
      {
        flood: { burst: 10_000, perSecond: 10_000, disconnectAfter: 100_000 },
        log: createLogger('info', (line) => void lines.push((JSON.parse(line) as { msg: string }).msg)),
      },
    );
    const stalled = await wireConnect(server.url, { role: 'viewer' });
    wires.push(stalled);
    stalled.stall();
    const reader = await connect(server.url, { role: 'viewer' });
    const received = collectChat(reader.socket);
    const sockets = (): number => server!.io.of('/').sockets.size;
    expect(sockets()).toBe(2);
    const text = CLEF.repeat(5000); // about 20 KB a message
    let sent = 0;
    const deadline = Date.now() + 15_000;
    while (sockets() === 2 && Date.now() < deadline && sent < 1500) {
      expect(((await reader.socket.emitWithAck('chat:send', { text })) as Ack).ok).toBe(true);
      sent++;
    }
    console.log(`the stalled client was dropped after ${sent} messages of 20 KB`);
    expect(sockets()).toBe(1);
    await waitFor(() => received.length === sent, 5000);
    expect(lines.filter((l) => l.includes('does not read'))).toHaveLength(1);
    expect(await metric(server.metricsUrl, 'streamroom_slow_clients_disconnected_total')).toBe(1);
  }, 30_000);

  it('a full history of 4-byte characters and ten stalled clients keep the process far below 256 MiB', async () => {
    room = await startRoom({
      CHAT_HISTORY_SIZE: '1000',
      CHAT_MAX_MESSAGE_LENGTH: '5000',
      CHAT_MESSAGES_PER_MINUTE: '6000',
      ROOM_MAX_VIEWERS_PER_ADDRESS: '0',
    });
    const url = await room.listening;
    const pid = room.child.pid!;
    const memory = (): string => {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const mib = (field: string): string =>
        (Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1]) / 1024).toFixed(1);
      return `${mib('VmRSS')} MiB (peak ${mib('VmHWM')} MiB)`;
    };
    const phases = [`started: ${memory()}`];
    const observer = await connect(url, { role: 'viewer' });
    const seen = collectChat(observer.socket);
    const presence = collect<{ viewers: number }>(observer.socket, 'presence');
    // Twenty clients that read (and discard) everything, and chat: in rounds of 100 messages of
    // about 20 KB (2 MB to every reader), each round once the previous one reached everybody, so
    // that no reader is ever behind by more than what the server lets wait for it.
    const chatters: WireClient[] = [];
    for (let i = 0; i < 20; i++) chatters.push(await wireConnect(url, { role: 'viewer' }));
    wires.push(...chatters);
    const rounds = async (n: number): Promise<void> => {
      for (let r = 0; r < n; r++) {
        const expected = seen.length + 100;
        for (const [c, w] of chatters.entries()) {
          for (let i = 0; i < 5; i++) w.emit('chat:send', { text: `${c}.${r}.${i} ${CLEF.repeat(4990)}` });
        }
        await waitFor(() => seen.length === expected, 10_000, 20);
        await sleep(250); // the chatters' flood budgets (20 a second) refill
      }
    };
    // 1000 messages: 20 MB of history if only the count bounded it.
    await rounds(10);
    phases.push(`history full: ${memory()}`);
    // Ten clients join and never read a byte: not even their welcome.
    for (let i = 0; i < 10; i++)
      wires.push(await wireConnect(url, { role: 'viewer' }, { stallOnJoin: true }));
    await waitFor(() => presence.at(-1)?.viewers === 31, 10_000);
    phases.push(`10 stalled clients joined: ${memory()}`);
    // 10 MB more to everybody: past what the kernel buffers for the stalled ones.
    await rounds(5);
    // The stalled clients are dropped (measured either way, to print the number).
    const dropped = await waitFor(() => presence.at(-1)?.viewers === 21, 15_000, 100).then(
      () => true,
      () => false,
    );
    phases.push(`10 MB more chat: ${memory()}`);
    const peakMiB = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
    const drops = room.output().match(/does not read/g)?.length ?? 0;
    console.log(`room process RSS: ${phases.join('; ')}; ${drops} clients dropped for not reading`);
    expect(dropped).toBe(true);
    expect(drops).toBe(10);
    expect(peakMiB).toBeLessThan(160);
  }, 120_000);
});

describe('per-address limits', () => {
  it('count a client under its address as the nearest untrusted hop gives it, IPv6 per /64', () => {
    const direct = clientKey([]);
    expect(direct('::ffff:192.0.2.7', '198.51.100.1')).toBe('192.0.2.7');
    expect(direct(undefined, undefined)).toBe('unknown');
    const behind = clientKey(['10.0.0.0/8', 'fd00::/8']);
    expect(behind('::ffff:10.1.2.3', '[2001:db8::1]:443, 198.51.100.7:5000')).toBe('198.51.100.7');
    expect(behind('10.1.2.3', ['203.0.113.9', '10.9.9.9, fd00::1'])).toBe('203.0.113.9');
    expect(behind('fd00::2', '10.0.0.1, 10.0.0.2')).toBe('10.0.0.1'); // only proxies: the farthest
    expect(behind('10.1.2.3', 'unknown')).toBe('10.1.2.3');
    expect(behind('192.0.2.7', '203.0.113.9')).toBe('192.0.2.7'); // not from a trusted proxy
    expect(addressKey('2001:db8:0:1:2:3:4:5')).toBe('2001:db8:0:1::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('64:ff9b::192.0.2.1')).toBe('64:ff9b:0:0::/64'); // NAT64, an IPv4 tail
  });

  it('hold at most 20 viewer seats per client address by default', async () => {
    server = await start();
    const seated = [];
    for (let i = 0; i < 20; i++) seated.push(await connect(server.url, { role: 'viewer' }));
    const refused = await refusal(connect(server.url, { role: 'viewer' }));
    expect(refused.reason).toBe('too_many_from_address');
    expect(refused.message).toMatch(/20 viewers/);
    expect(
      await metric(
        server.metricsUrl,
        'streamroom_rejected_connections_total{reason="too_many_from_address"}',
      ),
    ).toBe(1);
    // A broadcaster is not a viewer seat.
    await connect(server.url, { role: 'broadcaster', key: 'bk-test-0123456789' });
    seated[0]!.socket.close();
    await waitFor(async () => {
      try {
        await connect(server!.url, { role: 'viewer' });
        return true;
      } catch {
        return false;
      }
    });
  });

  it('take the address from X-Forwarded-For only behind a trusted proxy', async () => {
    const viewer = (url: string, forwardedFor?: string) =>
      connect(
        url,
        { role: 'viewer' },
        forwardedFor ? { extraHeaders: { 'X-Forwarded-For': forwardedFor } } : {},
      );
    server = await start({ ROOM_MAX_VIEWERS_PER_ADDRESS: '2' });
    await viewer(server.url, '203.0.113.1');
    await viewer(server.url, '203.0.113.2');
    expect((await refusal(viewer(server.url, '203.0.113.3'))).reason).toBe('too_many_from_address');
    await server.close();

    server = await start({ ROOM_MAX_VIEWERS_PER_ADDRESS: '2', ROOM_TRUSTED_PROXIES: '127.0.0.0/8, ::1' });
    await viewer(server.url, '203.0.113.1');
    await viewer(server.url, '203.0.113.1');
    expect((await refusal(viewer(server.url, '203.0.113.1'))).reason).toBe('too_many_from_address');
    // What the client itself put in front of the proxy's entry is not believed.
    expect((await refusal(viewer(server.url, '198.51.100.9, 203.0.113.1'))).reason).toBe(
      'too_many_from_address',
    );
    await viewer(server.url, '203.0.113.2');
    // IPv6 clients are counted per /64.
    await viewer(server.url, '2001:db8:1:2::1');
    await viewer(server.url, '2001:db8:1:2:ffff::2');
    expect((await refusal(viewer(server.url, '2001:db8:1:2::3'))).reason).toBe('too_many_from_address');
    await viewer(server.url, '2001:db8:1:3::1');
    // The proxy itself, without a header: its own address.
    await viewer(server.url);
  });

  it('give a client without a user token a new user id a few times a minute, then a shared one', async () => {
    server = await start({ ROOM_NEW_USERS_PER_ADDRESS_PER_MINUTE: '2', CHAT_MESSAGES_PER_MINUTE: '1' });
    const first = await connect(server.url, { role: 'viewer' });
    const second = await connect(server.url, { role: 'viewer' });
    const third = await connect(server.url, { role: 'viewer' });
    const fourth = await connect(server.url, { role: 'viewer' });
    const ids = [first, second, third, fourth].map((c) => c.welcome['user'] as string);
    expect(new Set(ids).size).toBe(3);
    expect(ids[3]).toBe(ids[2]);
    // The third and the fourth share one chat budget.
    expect(((await third.socket.emitWithAck('chat:send', { text: 'hi' })) as Ack).ok).toBe(true);
    expect(await fourth.socket.emitWithAck('chat:send', { text: 'me too' })).toEqual({
      ok: false,
      error: 'rate_limited',
    });
    // A returning user keeps their id whatever the limit.
    const again = await connect(server.url, { role: 'viewer', user: ids[0] });
    expect(again.welcome['user']).toBe(ids[0]);
    expect(((await again.socket.emitWithAck('chat:send', { text: 'back' })) as Ack).ok).toBe(true);
  });
});
