import { ConfigError, loadConfig } from '../src/server/config.js';

const base = { ROOM_BROADCASTER_KEY: 'broadcaster-key-1' };

function errorOf(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected loadConfig to throw');
}

describe('loadConfig', () => {
  it('applies defaults', () => {
    const c = loadConfig({ ...base, ROOM_NAME: 'demo' });
    expect(c).toEqual({
      port: 8080,
      listenAddress: undefined,
      roomName: 'demo',
      roomNamespace: 'default',
      title: 'demo',
      broadcasterKey: 'broadcaster-key-1',
      viewerKey: undefined,
      maxViewers: 0,
      chat: { enabled: true, historySize: 50, maxMessageLength: 500, messagesPerMinute: 20 },
      iceServers: [],
      shutdownTimeoutSeconds: 20,
      redis: undefined,
      media: {
        mode: 'SFU',
        relay: {
          path: expect.stringMatching(/room-image\/media\/dist\/streamroom-relay$/),
          udpPort: 0,
          tcpPort: 0,
          listenAddress: '0.0.0.0',
          announceAddresses: [],
          includeLoopback: false,
        },
      },
    });
  });

  it('reads the media settings and refuses bad ones', () => {
    const c = loadConfig({
      ...base,
      ROOM_MEDIA_MODE: 'PeerToPeer',
      ROOM_RELAY_PATH: '/bin/relay',
      ROOM_RELAY_UDP_PORT: '7882',
      ROOM_RELAY_TCP_PORT: '7881',
      ROOM_RELAY_LISTEN_ADDRESS: '127.0.0.1',
      ROOM_RELAY_ANNOUNCE_ADDRESSES: '192.0.2.10, 2001:db8::1',
      ROOM_RELAY_INCLUDE_LOOPBACK: 'true',
    });
    expect(c.media).toEqual({
      mode: 'PeerToPeer',
      relay: {
        path: '/bin/relay',
        udpPort: 7882,
        tcpPort: 7881,
        listenAddress: '127.0.0.1',
        announceAddresses: ['192.0.2.10', '2001:db8::1'],
        includeLoopback: true,
      },
    });
    expect(() => loadConfig({ ...base, ROOM_MEDIA_MODE: 'sfu' })).toThrow(
      /ROOM_MEDIA_MODE: must be one of SFU, PeerToPeer/,
    );
    expect(() => loadConfig({ ...base, ROOM_RELAY_UDP_PORT: '70000' })).toThrow(/ROOM_RELAY_UDP_PORT/);
    expect(() => loadConfig({ ...base, ROOM_RELAY_ANNOUNCE_ADDRESSES: 'node-1.example' })).toThrow(
      /ROOM_RELAY_ANNOUNCE_ADDRESSES: must be a comma-separated list of IP addresses/,
    );
  });

  it('reads every variable the operator sets', () => {
    const c = loadConfig({
      PORT: '9000',
      ROOM_NAME: 'r1',
      ROOM_NAMESPACE: 'team-a',
      ROOM_TITLE: 'Friday show',
      ROOM_BROADCASTER_KEY: 'bk-0123456789\n',
      ROOM_VIEWER_KEY: 'vk-0123456789',
      ROOM_MAX_VIEWERS: '25',
      CHAT_ENABLED: 'false',
      CHAT_HISTORY_SIZE: '10',
      CHAT_MAX_MESSAGE_LENGTH: '140',
      CHAT_MESSAGES_PER_MINUTE: '5',
      ICE_SERVERS: JSON.stringify([
        { urls: 'stun:stun.example.org:3478' },
        { urls: ['turn:turn.example.org:3478', 'turns:turn.example.org:5349'], username: 'u' },
      ]),
      ICE_SERVER_1_CREDENTIAL: 's3cret',
      SHUTDOWN_TIMEOUT_SECONDS: '15',
    });
    expect(c.port).toBe(9000);
    expect(c.roomNamespace).toBe('team-a');
    expect(c.title).toBe('Friday show');
    expect(c.broadcasterKey).toBe('bk-0123456789');
    expect(c.viewerKey).toBe('vk-0123456789');
    expect(c.maxViewers).toBe(25);
    expect(c.chat).toEqual({ enabled: false, historySize: 10, maxMessageLength: 140, messagesPerMinute: 5 });
    expect(c.iceServers).toEqual([
      { urls: 'stun:stun.example.org:3478' },
      {
        urls: ['turn:turn.example.org:3478', 'turns:turn.example.org:5349'],
        username: 'u',
        credential: 's3cret',
      },
    ]);
    expect(c.shutdownTimeoutSeconds).toBe(15);
  });

  it.each([
    [{}, 'ROOM_BROADCASTER_KEY'],
    [{ ROOM_BROADCASTER_KEY: 'short' }, 'ROOM_BROADCASTER_KEY'],
    [{ ...base, ROOM_VIEWER_KEY: 'abc' }, 'ROOM_VIEWER_KEY'],
    [{ ...base, PORT: 'eighty' }, 'PORT'],
    [{ ...base, PORT: '70000' }, 'PORT'],
    [{ ...base, ROOM_MAX_VIEWERS: '-1' }, 'ROOM_MAX_VIEWERS'],
    [{ ...base, ROOM_MAX_VIEWERS: '1.5' }, 'ROOM_MAX_VIEWERS'],
    [{ ...base, CHAT_ENABLED: 'yes' }, 'CHAT_ENABLED'],
    [{ ...base, CHAT_HISTORY_SIZE: 'x' }, 'CHAT_HISTORY_SIZE'],
    [{ ...base, CHAT_MAX_MESSAGE_LENGTH: '0' }, 'CHAT_MAX_MESSAGE_LENGTH'],
    [{ ...base, CHAT_MESSAGES_PER_MINUTE: '0' }, 'CHAT_MESSAGES_PER_MINUTE'],
    [{ ...base, SHUTDOWN_TIMEOUT_SECONDS: '0' }, 'SHUTDOWN_TIMEOUT_SECONDS'],
    [{ ...base, ICE_SERVERS: '{not json' }, 'ICE_SERVERS'],
    [{ ...base, ICE_SERVERS: '{"urls":"stun:x"}' }, 'ICE_SERVERS'],
    [{ ...base, ICE_SERVERS: '[{"urls":[]}]' }, 'ICE_SERVERS'],
    [{ ...base, ICE_SERVERS: '[{"urls":"http://x"}]' }, 'ICE_SERVERS'],
    [{ ...base, ICE_SERVERS: '[{"urls":"turn:x","credential":"inline"}]' }, 'ICE_SERVERS'],
    [{ ...base, ICE_SERVERS: '[{"urls":"turn:x","username":5}]' }, 'ICE_SERVERS'],
    [{ ...base, ROOM_REDIS_URL: 'not a url' }, 'ROOM_REDIS_URL'],
    [{ ...base, ROOM_REDIS_URL: 'http://redis:6379' }, 'ROOM_REDIS_URL'],
    [{ ...base, ROOM_REDIS_URL: 'redis://' }, 'ROOM_REDIS_URL'],
    [{ ...base, ROOM_REDIS_URL: 'redis://redis:6379/zero' }, 'ROOM_REDIS_URL'],
    [{ ...base, ROOM_REDIS_URL: 'redis://redis:99999' }, 'ROOM_REDIS_URL'],
    [
      { ...base, ROOM_REDIS_URL: 'redis://redis:6379', ROOM_REDIS_KEY_PREFIX: 'a b' },
      'ROOM_REDIS_KEY_PREFIX',
    ],
  ])('rejects %j naming %s', (env, variable) => {
    const err = errorOf(env as Record<string, string>);
    expect(err.variable).toBe(variable);
    expect(err.message).toContain(variable);
  });

  it('never puts key values in error messages', () => {
    const err = errorOf({ ROOM_BROADCASTER_KEY: 'abc' });
    expect(err.message).not.toContain('abc');
    const redis = errorOf({ ...base, ROOM_REDIS_URL: 'redis://:pa55word@redis:6379/x' });
    expect(redis.message).not.toContain('pa55word');
  });

  it('reads the Redis backplane of a multi-replica room', () => {
    expect(loadConfig(base).redis).toBeUndefined();
    expect(loadConfig({ ...base, ROOM_REDIS_URL: '  ' }).redis).toBeUndefined();
    const env = { ...base, ROOM_NAME: 'demo', ROOM_NAMESPACE: 'team-a' };
    expect(loadConfig({ ...env, ROOM_REDIS_URL: 'redis://:pw@demo-redis:6379/0' }).redis).toEqual({
      url: 'redis://:pw@demo-redis:6379/0',
      keyPrefix: 'streamroom:team-a:demo:',
    });
    expect(
      loadConfig({ ...env, ROOM_REDIS_URL: 'rediss://shared:6380', ROOM_REDIS_KEY_PREFIX: 'rooms:x:' }).redis,
    ).toEqual({ url: 'rediss://shared:6380', keyPrefix: 'rooms:x:' });
  });
});
