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
      metricsPort: 9090,
      listenAddress: undefined,
      roomName: 'demo',
      roomNamespace: 'default',
      title: 'demo',
      broadcasterKey: 'broadcaster-key-1',
      viewerKey: undefined,
      maxViewers: 0,
      chat: { enabled: true, historySize: 50, maxMessageLength: 500, messagesPerMinute: 20 },
      chatBatchMs: 50,
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
      limits: { chatHistoryBytes: 262_144, viewersPerAddress: 20, newUsersPerAddressPerMinute: 30 },
      trustedProxies: [],
      allowedOrigins: [],
    });
  });

  it('reads the limits, trusted proxies, allowed origins and the metrics port', () => {
    const c = loadConfig({
      ...base,
      ROOM_METRICS_PORT: '9100',
      CHAT_HISTORY_MAX_BYTES: '65536',
      ROOM_MAX_VIEWERS_PER_ADDRESS: '0',
      ROOM_NEW_USERS_PER_ADDRESS_PER_MINUTE: '5',
      ROOM_TRUSTED_PROXIES: '10.0.0.0/8, 192.0.2.1,fd00::/8',
      ROOM_ALLOWED_ORIGINS: 'https://Embed.Example, http://localhost:3000/',
    });
    expect(c.metricsPort).toBe(9100);
    expect(c.limits).toEqual({
      chatHistoryBytes: 65536,
      viewersPerAddress: 0,
      newUsersPerAddressPerMinute: 5,
    });
    expect(c.trustedProxies).toEqual(['10.0.0.0/8', '192.0.2.1', 'fd00::/8']);
    expect(c.allowedOrigins).toEqual(['https://embed.example', 'http://localhost:3000']);
    expect(loadConfig({ ...base, PORT: '0', ROOM_METRICS_PORT: '0' }).metricsPort).toBe(0);
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
    [{ ...base, CHAT_BATCH_MS: '0' }, 'CHAT_BATCH_MS'],
    [{ ...base, CHAT_BATCH_MS: '1001' }, 'CHAT_BATCH_MS'],
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
    [{ ...base, ROOM_METRICS_PORT: '8080' }, 'ROOM_METRICS_PORT'],
    [{ ...base, ROOM_METRICS_PORT: '65536' }, 'ROOM_METRICS_PORT'],
    [{ ...base, CHAT_HISTORY_MAX_BYTES: '100' }, 'CHAT_HISTORY_MAX_BYTES'],
    [{ ...base, CHAT_HISTORY_MAX_BYTES: '2000000' }, 'CHAT_HISTORY_MAX_BYTES'],
    [{ ...base, ROOM_MAX_VIEWERS_PER_ADDRESS: '-1' }, 'ROOM_MAX_VIEWERS_PER_ADDRESS'],
    [{ ...base, ROOM_NEW_USERS_PER_ADDRESS_PER_MINUTE: 'many' }, 'ROOM_NEW_USERS_PER_ADDRESS_PER_MINUTE'],
    [{ ...base, ROOM_TRUSTED_PROXIES: 'ingress-nginx' }, 'ROOM_TRUSTED_PROXIES'],
    [{ ...base, ROOM_TRUSTED_PROXIES: '10.0.0.0/33' }, 'ROOM_TRUSTED_PROXIES'],
    [{ ...base, ROOM_TRUSTED_PROXIES: '10.0.0.1,' }, 'ROOM_TRUSTED_PROXIES'],
    [{ ...base, ROOM_ALLOWED_ORIGINS: 'embed.example' }, 'ROOM_ALLOWED_ORIGINS'],
    [{ ...base, ROOM_ALLOWED_ORIGINS: 'https://embed.example/page' }, 'ROOM_ALLOWED_ORIGINS'],
    [{ ...base, ROOM_ALLOWED_ORIGINS: 'ftp://embed.example' }, 'ROOM_ALLOWED_ORIGINS'],
  ])('rejects %j naming %s', (env, variable) => {
    const err = errorOf(env as Record<string, string>);
    expect(err.variable).toBe(variable);
    expect(err.message).toContain(variable);
  });

  it('truncates a title over 120 characters (as the CRD counts them) with a warning, never fails', () => {
    const warnings: string[] = [];
    const warn = (variable: string, message: string): void => void warnings.push(`${variable}: ${message}`);
    const emoji = '\u{1F600}'; // one character, two UTF-16 units
    expect(loadConfig({ ...base, ROOM_TITLE: emoji.repeat(120) }, warn).title).toBe(emoji.repeat(120));
    expect(warnings).toEqual([]);
    expect(loadConfig({ ...base, ROOM_TITLE: emoji.repeat(121) }, warn).title).toBe(emoji.repeat(120));
    expect(warnings).toEqual([expect.stringMatching(/^ROOM_TITLE: .*truncated to 120 characters/)]);
    // ... at a character boundary that keeps a family emoji (one grapheme of 7 characters) whole.
    const family = '\u{1F468}\u200D\u{1F469}\u200D\u{1F467}\u200D\u{1F466}';
    expect(loadConfig({ ...base, ROOM_TITLE: 'a'.repeat(115) + family }).title).toBe('a'.repeat(115));
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
