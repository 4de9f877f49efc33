// Rooms sharing one Redis (--shared-redis-url) against a real control plane and a real redis-server:
// each room gets a Redis user of its own, limited to its key prefix, and only that user's URL; the
// admin password never reaches a room; deleting the room deletes its user.
import { createClient } from '@redis/client';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { RunningOperator } from '../../operator/src/index.js';
import { startRedis, type RedisProcess } from '../../room-image/test/processes.js';
import { eventually, startCluster, type Cluster } from '../src/cluster.js';
import { installCrd, roomManifest, runOperator } from '../src/operator.js';

const NS = 'shared';
const ADMIN = 'admin-password-0123456789';
let cluster: Cluster;
let redis: RedisProcess;
let operator: RunningOperator | undefined;
let admin: ReturnType<typeof createClient>;

const secretValue = async (name: string, key: string) =>
  Buffer.from(
    await cluster.kubectl(['get', 'secret', name, '-n', NS, '-o', `jsonpath={.data.${key}}`]),
    'base64',
  ).toString();

beforeAll(async () => {
  redis = await startRedis(undefined, ['--requirepass', ADMIN]);
  admin = createClient({ url: `redis://:${ADMIN}@127.0.0.1:${redis.port}` });
  await admin.connect();
  cluster = await startCluster();
  await installCrd(cluster);
  await cluster.kubectl(['create', 'namespace', NS]);
  operator = await runOperator(cluster, {
    args: ['--shared-redis-url', `redis://:${ADMIN}@127.0.0.1:${redis.port}`],
  });
}, 240_000);

afterAll(async () => {
  await operator?.stop();
  await admin?.quit();
  await cluster?.stop();
  await redis?.stop();
}, 60_000);

describe('rooms on a shared Redis', () => {
  it('each get a user of their own, which reaches its own keys only', async () => {
    const appliedAt = Date.now();
    for (const name of ['alpha', 'beta']) {
      await cluster.kubectl(
        ['apply', '-f', '-'],
        JSON.stringify(roomManifest(name, NS, { replicas: { max: 3 } })),
      );
    }
    await eventually(
      'both rooms Ready',
      async () => {
        const phases = await cluster.kubectl([
          'get',
          'streamrooms',
          '-n',
          NS,
          '-o',
          'jsonpath={.items[*].status.phase}',
        ]);
        return phases === 'Ready Ready';
      },
      60_000,
    );
    console.log(
      `shared Redis: two rooms applied -> Ready in ${Date.now() - appliedAt} ms (ACL users included)`,
    );
    const url = await secretValue('alpha-keys', 'redisUrl');
    expect(url).toMatch(new RegExp(`^redis://room%3Ashared%3Aalpha:[^@]+@127\\.0\\.0\\.1:${redis.port}$`));
    expect(url).not.toContain(ADMIN);
    expect(await admin.sendCommand(['ACL', 'USERS'])).toEqual(
      expect.arrayContaining(['room:shared:alpha', 'room:shared:beta']),
    );
    const alpha = createClient({ url });
    await alpha.connect();
    try {
      // (commands the room server uses, on its own keys: allowed; on another room's: refused)
      await alpha.lRange('streamroom:shared:alpha:chat', 0, -1);
      await expect(alpha.lRange('streamroom:shared:beta:chat', 0, -1)).rejects.toThrow(/NOPERM/);
      await expect(alpha.sendCommand(['FLUSHALL'])).rejects.toThrow(/NOPERM/);
      await expect(alpha.sendCommand(['KEYS', '*'])).rejects.toThrow(/NOPERM/);
    } finally {
      await alpha.quit();
    }
    const room = JSON.parse(await cluster.kubectl(['get', 'streamroom', 'alpha', '-n', NS, '-o', 'json']));
    expect(room.metadata.finalizers).toEqual(['streamroom.dev/redis-acl']);
  }, 120_000);

  it('deletes the room\u2019s user when the room is deleted', async () => {
    await cluster.kubectl(['delete', 'streamroom', 'alpha', '-n', NS, '--wait=true', '--timeout=60s']);
    expect(await admin.sendCommand(['ACL', 'USERS'])).not.toContain('room:shared:alpha');
    expect(await admin.sendCommand(['ACL', 'USERS'])).toContain('room:shared:beta');
  }, 90_000);
});
