// The operator, in-process, against a real control plane (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler): it creates and repairs each room's children, writes status, suspends and resumes,
// reports what the schema cannot reject, and writes nothing when nothing changes.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { RunningOperator } from '../../operator/src/index.js';
import { eventually, startCluster, REPO_DIR, type Cluster } from '../src/cluster.js';
import { eventsOf, installCrd, roomManifest, runOperator } from '../src/operator.js';

const NS = 'rooms';
let cluster: Cluster;
let operator: RunningOperator | undefined;

const get = async (kind: string, name: string, jsonpath = '{}') => {
  const r = await cluster.kubectlResult(['get', kind, name, '-n', NS, '-o', `jsonpath=${jsonpath}`]);
  return r.code === 0 ? r.stdout : undefined;
};
const getJson = async (kind: string, name: string) => {
  const out = await cluster.kubectlResult(['get', kind, name, '-n', NS, '-o', 'json']);
  return out.code === 0 ? (JSON.parse(out.stdout) as Record<string, any>) : undefined; // eslint-disable-line @typescript-eslint/no-explicit-any
};
const applyRoom = (name: string, spec: object) =>
  cluster.kubectl(['apply', '-f', '-'], JSON.stringify(roomManifest(name, NS, spec)));
const patchRoom = (name: string, spec: object) =>
  cluster.kubectl(['patch', 'streamroom', name, '-n', NS, '--type', 'merge', '-p', JSON.stringify({ spec })]);

/** The operator's writes once its queue is idle after a full resync. */
async function writesAfterResync(op: RunningOperator): Promise<Record<string, number>> {
  await new Promise((r) => setTimeout(r, 1500)); // let watch events of earlier writes arrive
  op.controller.resync();
  await op.controller.queue.idle();
  return { ...op.controller.kube.writes };
}

beforeAll(async () => {
  cluster = await startCluster();
  await installCrd(cluster);
  await cluster.kubectl(['create', 'namespace', NS]);
  operator = await runOperator(cluster);
}, 240_000);

afterAll(async () => {
  await operator?.stop();
  await cluster?.stop();
}, 60_000);

describe('the operator on a real control plane', () => {
  it('creates the Secret, Deployment, Service, HPA and Redis of a room, owned by it, and writes status', async () => {
    await applyRoom('alpha', { title: 'Alpha', private: true, replicas: { min: 2, max: 5 } });
    const room = await getJson('streamroom', 'alpha');
    const uid = room?.metadata.uid as string;
    for (const [kind, name] of [
      ['deployment', 'alpha'],
      ['service', 'alpha'],
      ['hpa', 'alpha'],
      ['deployment', 'alpha-redis'],
      ['service', 'alpha-redis'],
    ] as const) {
      const child = await eventually(`${kind} ${name}`, () => getJson(kind, name));
      expect(child.metadata.ownerReferences).toEqual([
        expect.objectContaining({ kind: 'StreamRoom', name: 'alpha', uid, controller: true }),
      ]);
    }
    const secret = await eventually('secret', () => getJson('secret', 'alpha-keys'));
    expect(Object.keys(secret.data).sort()).toEqual([
      'broadcasterKey',
      'redisPassword',
      'redisUrl',
      'viewerKey',
    ]);
    const hpa = await getJson('hpa', 'alpha');
    expect(hpa?.spec).toMatchObject({ minReplicas: 2, maxReplicas: 5 });
    // kwok's nodes run the pods; the HPA raises the Deployment to the room's minimum of 2.
    const status = await eventually('Ready with 2 replicas', async () => {
      const r = await getJson('streamroom', 'alpha');
      return r?.status?.phase === 'Ready' && r.status.ready === '2/2' ? r.status : undefined;
    });
    expect(status).toMatchObject({
      url: 'http://alpha.rooms.svc.cluster.local/',
      observedGeneration: room?.metadata.generation,
      keysSecretName: 'alpha-keys',
      replicas: 2,
      readyReplicas: 2,
    });
    expect(status.conditions.find((c: { type: string }) => c.type === 'Ready')).toMatchObject({
      status: 'True',
      reason: 'RoomReady',
      observedGeneration: room?.metadata.generation,
    });
    const table = await cluster.kubectl(['get', 'streamrooms', '-n', NS]);
    expect(table).toMatch(/^alpha\s+Ready\s+2\/2\s+http:\/\/alpha\.rooms\.svc\.cluster\.local\/\s+\d+s$/m);
    expect(status.conditions.map((c: { type: string }) => c.type)).toEqual([
      'Ready',
      'Available',
      'Progressing',
      'Degraded',
      'BackplaneReady',
    ]);
    const events = await eventsOf(cluster, NS, 'alpha');
    // one Event for everything the first reconcile created
    expect(events).toMatch(/Created .*Secret alpha-keys.*Deployment alpha, Service alpha/);
  }, 60_000);

  it('writes nothing when nothing changed', async () => {
    const op = operator as RunningOperator;
    const before = await writesAfterResync(op);
    expect(await writesAfterResync(op)).toEqual(before);
  }, 30_000);

  it('follows spec changes: image, resources, bounds, expose type', async () => {
    await patchRoom('alpha', {
      image: 'streamroom/room:2',
      resources: { requests: { cpu: '250m' }, limits: { cpu: '1', memory: '512Mi' } },
      replicas: { min: 1, max: 3 },
      expose: { type: 'NodePort' },
    });
    await eventually('new resources', async () => {
      const r = await get('deployment', 'alpha', '{.spec.template.spec.containers[0].resources}');
      return r
        ? JSON.stringify(JSON.parse(r)) ===
            JSON.stringify({
              limits: { cpu: '1', memory: '512Mi' },
              requests: { cpu: '250m', memory: '512Mi' },
            })
        : false;
    });
    await eventually(
      'new image',
      async () =>
        (await get('deployment', 'alpha', '{.spec.template.spec.containers[0].image}')) ===
        'streamroom/room:2',
    );
    await eventually('new bounds', async () => (await get('hpa', 'alpha', '{.spec.maxReplicas}')) === '3');
    await eventually('NodePort', async () => (await get('service', 'alpha', '{.spec.type}')) === 'NodePort');
  }, 30_000);

  it('gives a room its own Redis only while it can scale out', async () => {
    await applyRoom('gamma', { replicas: { min: 1, max: 1 } });
    const env = async () =>
      (await get('deployment', 'gamma', '{.spec.template.spec.containers[0].env[*].name}')) ?? '';
    await eventually(
      'gamma Ready',
      async () => (await get('streamroom', 'gamma', '{.status.phase}')) === 'Ready',
    );
    expect(await get('deployment', 'gamma-redis')).toBeUndefined();
    expect(await env()).not.toContain('ROOM_REDIS_URL');
    await patchRoom('gamma', { replicas: { max: 2 } });
    await eventually('Redis of gamma', () => get('service', 'gamma-redis', '{.spec.ports[0].port}'));
    await eventually('room told where Redis is', async () => (await env()).includes('ROOM_REDIS_URL'));
    await eventually(
      'backplane ready',
      async () =>
        (await get('streamroom', 'gamma', '{.status.conditions[?(@.type=="BackplaneReady")].reason}')) ===
        'RedisReady',
    );
    await patchRoom('gamma', { replicas: { max: 1 } });
    await eventually('Redis removed', async () => (await get('deployment', 'gamma-redis')) === undefined);
    await eventually('env without Redis', async () => !(await env()).includes('ROOM_REDIS_URL'));
    await cluster.kubectl(['delete', 'streamroom', 'gamma', '-n', NS]);
    // (collected by the garbage collector; later tests count the Deployments left)
    await eventually('gamma collected', async () => (await get('deployment', 'gamma')) === undefined, 60_000);
  }, 120_000);

  it('repairs a deleted child and a changed field it owns, and leaves the replica count to others', async () => {
    const hpaUid = await get('hpa', 'alpha', '{.metadata.uid}');
    await cluster.kubectl(['delete', 'service', 'alpha', '-n', NS]);
    await cluster.kubectl(['delete', 'hpa', 'alpha', '-n', NS]);
    await cluster.kubectl(['set', 'image', 'deployment/alpha', '-n', NS, 'room=evil/room:1']);
    await cluster.kubectl(['scale', 'deployment/alpha', '-n', NS, '--replicas=3']); // as the HPA would
    await eventually('service back', () => get('service', 'alpha', '{.metadata.uid}'));
    await eventually('hpa back', async () => {
      const uid = await get('hpa', 'alpha', '{.metadata.uid}');
      return uid !== undefined && uid !== hpaUid;
    });
    await eventually(
      'image repaired',
      async () =>
        (await get('deployment', 'alpha', '{.spec.template.spec.containers[0].image}')) ===
        'streamroom/room:2',
    );
    expect(await get('deployment', 'alpha', '{.spec.replicas}')).toBe('3');
  }, 30_000);

  it('suspends to zero replicas without an HPA, and resumes', async () => {
    await patchRoom('alpha', { suspend: true });
    await eventually(
      'suspended',
      async () => (await get('streamroom', 'alpha', '{.status.phase}')) === 'Suspended',
    );
    expect(await get('deployment', 'alpha', '{.spec.replicas}')).toBe('0');
    await eventually('hpa removed', async () => (await get('hpa', 'alpha')) === undefined);
    await patchRoom('alpha', { suspend: false });
    await eventually('hpa back', () => get('hpa', 'alpha', '{.metadata.uid}'));
    await eventually(
      'resumed',
      async () => (await get('streamroom', 'alpha', '{.status.phase}')) === 'Ready',
    );
    expect(Number(await get('deployment', 'alpha', '{.spec.replicas}'))).toBeGreaterThanOrEqual(1);
  }, 30_000);

  it('reports a name conflict in status and Events, and keeps serving other rooms', async () => {
    await cluster.kubectl(['create', 'service', 'clusterip', 'taken', '-n', NS, '--tcp=80:80']);
    await applyRoom('taken', {});
    await applyRoom('beta', {});
    const cond = await eventually('conflict reported', async () => {
      const r = await getJson('streamroom', 'taken');
      return r?.status?.phase === 'Failed'
        ? r.status.conditions.find((c: { type: string }) => c.type === 'Degraded')
        : undefined;
    });
    expect(cond).toMatchObject({ status: 'True', reason: 'NameConflict' });
    expect(cond.message).toContain('Service taken already exists and does not belong to this StreamRoom');
    const events = await eventsOf(cluster, NS, 'taken', 'Warning');
    expect(events).toContain('NameConflict');
    await eventually(
      'beta Ready',
      async () => (await get('streamroom', 'beta', '{.status.phase}')) === 'Ready',
    );
    // The user's own Service is untouched.
    expect(await get('service', 'taken', '{.metadata.ownerReferences}')).toBe('');
  }, 60_000);

  it('converges after a restart with no duplicates and no writes', async () => {
    // First let the rooms of the earlier tests settle (pods, the HPA): a resync that writes nothing.
    const op = operator as RunningOperator;
    let before = await writesAfterResync(op);
    await eventually('a quiet cluster', async () => {
      const after = await writesAfterResync(op);
      const quiet = JSON.stringify(after) === JSON.stringify(before);
      before = after;
      return quiet;
    });
    await operator?.stop();
    operator = await runOperator(cluster);
    expect(await writesAfterResync(operator)).toEqual({
      create: 0,
      apply: 0,
      delete: 0,
      status: 0,
      finalizers: 0,
      live: 0,
      event: 0,
    });
    const deployments = await cluster.kubectl(['get', 'deployments', '-n', NS, '-o', 'name']);
    expect(deployments.trim().split('\n').sort()).toEqual([
      'deployment.apps/alpha',
      'deployment.apps/alpha-redis',
      'deployment.apps/beta',
      'deployment.apps/beta-redis',
    ]);
  }, 60_000);

  it('leaves cleanup to the garbage collector when a room is deleted', async () => {
    await cluster.kubectl(['delete', 'streamroom', 'alpha', '-n', NS]);
    for (const kind of ['deployment', 'service', 'hpa']) {
      await eventually(`${kind} collected`, async () => (await get(kind, 'alpha')) === undefined, 60_000);
    }
    await eventually(
      'secret collected',
      async () => (await get('secret', 'alpha-keys')) === undefined,
      60_000,
    );
  }, 120_000);

  it('runs as a process and exits cleanly on SIGTERM', async () => {
    const main = path.join(REPO_DIR, 'operator', 'dist', 'main.js');
    expect(existsSync(main)).toBe(true); // built by `npm test` (npm run build) before jest runs
    await cluster.kubectl(['create', 'namespace', 'sigterm']);
    const child = spawn(
      process.execPath,
      [main, '--namespaces', 'sigterm', '--health-address', '127.0.0.1:0'],
      {
        env: { ...process.env, KUBECONFIG: cluster.kubeconfig },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await eventually('operator started', async () => out.includes('"msg":"operator started"'), 30_000);
    const t0 = Date.now();
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(out).toContain('"msg":"operator stopped"');
    for (const line of out.trim().split('\n')) expect(() => JSON.parse(line)).not.toThrow(); // JSON logs only
  }, 60_000);
});
