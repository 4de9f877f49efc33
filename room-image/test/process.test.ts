import { BROADCASTER_KEY, connect, closeAllClients, nextEvent } from './helpers.js';
import { startRoom } from './processes.js';

afterEach(() => closeAllClients());

describe('server process', () => {
  it.each([
    [{ ROOM_MAX_VIEWERS: 'lots' }, 'ROOM_MAX_VIEWERS'],
    [{ ROOM_REDIS_URL: 'http://:hunter2-secret@redis:6379' }, 'ROOM_REDIS_URL'],
  ])(
    'exits with status 2 and names the variable on bad configuration (%j)',
    async (env, variable) => {
      const p = await startRoom(env);
      p.listening.catch(() => undefined);
      expect(await p.exited).toBe(2);
      expect(p.output()).toContain(variable);
      expect(p.output()).not.toContain(BROADCASTER_KEY);
      expect(p.output()).not.toContain('hunter2');
    },
    20_000,
  );

  it('starts with a title of 121 emoji (the CRD allows 120) cut to 120, and says so', async () => {
    const emoji = '\u{1F3A5}';
    const p = await startRoom({ ROOM_TITLE: emoji.repeat(121) });
    const url = await p.listening;
    const cfg = (await (await fetch(`${url}/config.json`)).json()) as { title: string };
    expect(cfg.title).toBe(emoji.repeat(120));
    expect(p.output()).toMatch(/"level":"warn".*ROOM_TITLE/);
    await p.crash();
  }, 20_000);

  it('on SIGTERM tells clients to reconnect and exits 0 within the timeout', async () => {
    const p = await startRoom({ SHUTDOWN_TIMEOUT_SECONDS: '4' });
    const url = await p.listening;
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    const b = await connect(url, { role: 'broadcaster', key: BROADCASTER_KEY });
    const v = await connect(url, { role: 'viewer' });
    const notices = [nextEvent(b.socket, 'server:shutdown'), nextEvent(v.socket, 'server:shutdown')];
    const started = Date.now();
    p.child.kill('SIGTERM');
    for (const n of notices) expect(await n).toMatchObject({ reconnect: true });
    expect((await fetch(`${url}/readyz`)).status).toBe(503);
    expect(await p.exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(4000);
    expect(p.output()).not.toContain(BROADCASTER_KEY);
  }, 20_000);
});
