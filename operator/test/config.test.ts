import { describe, expect, it } from '@jest/globals';
import { DEFAULT_REDIS_IMAGE, DEFAULT_ROOM_IMAGE, loadConfig, usage } from '../src/config.js';

describe('loadConfig', () => {
  it('has defaults for everything', () => {
    expect(loadConfig([], {})).toEqual({
      defaultImage: DEFAULT_ROOM_IMAGE,
      redisImage: DEFAULT_REDIS_IMAGE,
      namespaces: [],
      workers: 4,
      logLevel: 'info',
      resyncPeriodSeconds: 600,
      watchIdleTimeoutSeconds: 300,
      clusterDomain: 'cluster.local',
      healthAddress: '0.0.0.0:8081',
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
    [['--workers', '0'], /--workers must be a whole number from 1 to 64, got "0"/],
    [['--workers', 'many'], /--workers/],
    [['--log-level', 'loud'], /--log-level must be one of debug, info, warn, error/],
    [['--namespaces', 'Bad_NS'], /"Bad_NS" is not a valid namespace name/],
    [['--no-such-flag'], /Unknown option '--no-such-flag'/],
    [
      ['--shared-redis-url', 'http://redis:6379'],
      /--shared-redis-url must be a redis:\/\/ or rediss:\/\/ URL/,
    ],
    [['--shared-redis-url', 'not a url'], /--shared-redis-url/],
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
