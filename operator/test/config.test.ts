import { describe, expect, it } from '@jest/globals';
import { DEFAULT_REDIS_IMAGE, DEFAULT_ROOM_IMAGE, loadConfig, usage } from '../src/config.js';

describe('loadConfig', () => {
  it('has defaults for everything', () => {
    expect(loadConfig([], {})).toEqual({
      defaultImage: DEFAULT_ROOM_IMAGE,
      redisImage: DEFAULT_REDIS_IMAGE,
      namespaces: [],
      workers: 16,
      kubeApiQps: 200,
      kubeApiBurst: 400,
      logLevel: 'info',
      resyncPeriodSeconds: 600,
      watchIdleTimeoutSeconds: 300,
      clusterDomain: 'cluster.local',
      healthAddress: '0.0.0.0:8081',
      mediaNetwork: 'HostPort',
      mediaPortRange: { from: 20000, to: 29999 },
      policy: { images: [], hosts: new Map() },
      trustedProxies: [],
      livePollSeconds: 10,
      liveStatusSeconds: 15,
      wakerListen: '',
      maxWaking: 20,
    });
  });

  it('takes the live status intervals, and a /live URL template only as an http(s) URL', () => {
    expect(
      loadConfig(
        [
          '--live-poll-interval=0',
          '--live-status-interval=30',
          '--live-url-template=http://127.0.0.1:9/{namespace}/{name}',
        ],
        {},
      ),
    ).toMatchObject({
      livePollSeconds: 0,
      liveStatusSeconds: 30,
      liveUrlTemplate: 'http://127.0.0.1:9/{namespace}/{name}',
    });
    expect(() => loadConfig(['--live-status-interval=0'], {})).toThrow(/live-status-interval/);
    expect(() => loadConfig(['--live-url-template=file:///etc/passwd'], {})).toThrow(/live-url-template/);
  });

  it('takes the waker: where it listens, the pod address sleeping rooms point at, how many wake at once', () => {
    expect(
      loadConfig([], {
        STREAMROOM_WAKER_LISTEN: '0.0.0.0:8082',
        STREAMROOM_WAKER_ADDRESS: '10.244.0.7',
        STREAMROOM_MAX_WAKING: '5',
      }),
    ).toMatchObject({ wakerListen: '0.0.0.0:8082', wakerAddress: '10.244.0.7', maxWaking: 5 });
    expect(() => loadConfig(['--waker-address=pod.example.com'], {})).toThrow(/waker-address/);
    expect(() => loadConfig(['--max-waking=0'], {})).toThrow(/max-waking/);
  });

  it('takes the media network, the port range and the TURN gateway', () => {
    expect(
      loadConfig(
        [
          '--media-network=TURN',
          '--media-port-range=7000-7999',
          '--turn-urls=turn:203.0.113.5:3478?transport=udp, turns:turn.example.com:5349',
          '--turn-secret-file=/etc/turn/secret',
        ],
        {},
      ),
    ).toMatchObject({
      mediaNetwork: 'TURN',
      mediaPortRange: { from: 7000, to: 7999 },
      turn: {
        urls: ['turn:203.0.113.5:3478?transport=udp', 'turns:turn.example.com:5349'],
        secretFile: '/etc/turn/secret',
      },
    });
  });

  it('reads the environment, and flags win over it', () => {
    const env = {
      STREAMROOM_WORKERS: '2',
      STREAMROOM_NAMESPACES: 'a, b',
      STREAMROOM_DEFAULT_IMAGE: 'x/room:2',
    };
    expect(loadConfig([], env)).toMatchObject({
      workers: 2,
      namespaces: ['a', 'b'],
      defaultImage: 'x/room:2',
    });
    expect(loadConfig(['--workers', '8', '--log-level=debug'], env)).toMatchObject({
      workers: 8,
      logLevel: 'debug',
    });
  });

  it.each([
    [['--workers', '0'], /--workers must be a whole number from 1 to 256, got "0"/],
    [['--workers', 'many'], /--workers/],
    [['--log-level', 'loud'], /--log-level must be one of debug, info, warn, error/],
    [['--namespaces', 'Bad_NS'], /"Bad_NS" is not a valid namespace name/],
    [['--no-such-flag'], /Unknown option '--no-such-flag'/],
    [
      ['--shared-redis-url', 'http://redis:6379'],
      /--shared-redis-url must be a redis:\/\/ or rediss:\/\/ URL/,
    ],
    [['--shared-redis-url', 'not a url'], /--shared-redis-url/],
    [['--media-network', 'Direct'], /--media-network must be HostPort or TURN/],
    [['--media-port-range', '80-90'], /--media-port-range must look like 20000-29999/],
    [['--media-port-range', '30000-20000'], /--media-port-range/],
    [['--turn-urls', 'turn:a:3478'], /--turn-urls and --turn-secret-file go together/],
    [
      ['--turn-urls', 'stun:a:3478', '--turn-secret-file', '/s'],
      /"stun:a:3478" is not a turn: or turns: URL/,
    ],
  ])('rejects %j with a clear message', (argv, message) => {
    expect(() => loadConfig(argv, {})).toThrow(message);
  });

  it('takes a shared Redis URL', () => {
    expect(loadConfig(['--shared-redis-url', 'redis://:pw@redis.infra:6379/1'], {})).toMatchObject({
      sharedRedisUrl: 'redis://:pw@redis.infra:6379/1',
    });
  });

  it('documents every flag with its environment variable', () => {
    expect(usage()).toContain('--default-image');
    expect(usage()).toContain('STREAMROOM_WATCH_IDLE_TIMEOUT');
  });
});
