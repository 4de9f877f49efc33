// Rooms at scale on the local cluster: an HPA scales a room's Deployment on the pod CPU that kwok
// reports (through metrics-server) and back down, with the operator leaving the replica count to it;
// and 100 rooms applied at once all become Ready.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { RunningOperator } from '../../operator/src/index.js';
import { eventually, startCluster, type Cluster } from '../src/cluster.js';
import { installCrd, roomManifest, runOperator } from '../src/operator.js';

let cluster: Cluster;
let operator: RunningOperator | undefined;

const room = (name: string, namespace: string, spec: object = {}) =>
  roomManifest(name, namespace, { image: 'streamroom/room:test', ...spec });
const jsonpath = async (ns: string, kind: string, name: string, expr: string) =>
  (await cluster.kubectlResult(['get', kind, name, '-n', ns, '-o', `jsonpath=${expr}`])).stdout;
/** Sets the CPU each matching pod reports through kwok (see e2e/cluster/README.md). */
const setPodCpu = (ns: string, selector: string, cpu: string) =>
  cluster.kubectl([
    'annotate',
    'pods',
    '-n',
    ns,
    '-l',
    selector,
    `kwok.x-k8s.io/usage-cpu=${cpu}`,
    '--overwrite',
  ]);

beforeAll(async () => {
  cluster = await startCluster();
  await installCrd(cluster);
  await cluster.kubectl(['create', 'namespace', 'hpa']);
  await cluster.kubectl(['create', 'namespace', 'many']);
  operator = await runOperator(cluster);
}, 240_000);

afterAll(async () => {
  await operator?.stop();
  await cluster?.stop();
}, 60_000);

describe('rooms at scale', () => {
  it('scales a busy room out on CPU and back in when the load is gone', async () => {
    const spec = {
      // (PeerToPeer: no media port, so replicas need no node each; two kwok nodes here)
      media: { mode: 'PeerToPeer' },
      replicas: { min: 1, max: 4 },
      autoscaling: { targetCPUUtilizationPercentage: 50, scaleDownStabilizationWindowSeconds: 0 },
      resources: { requests: { cpu: '100m' } },
    };
    await cluster.kubectl(['apply', '-f', '-'], JSON.stringify(room('busy', 'hpa', spec)));
    const selector = 'app.kubernetes.io/instance=busy';
    await eventually(
      'Ready',
      async () => (await jsonpath('hpa', 'streamroom', 'busy', '{.status.phase}')) === 'Ready',
    );

    await setPodCpu('hpa', selector, '900m'); // 900% of the request, far above the 50% target
    await eventually(
      'four ready replicas in status',
      async () => (await jsonpath('hpa', 'streamroom', 'busy', '{.status.ready}')) === '4/4',
      150_000,
      1000,
    );
    expect(await jsonpath('hpa', 'deployment', 'busy', '{.spec.replicas}')).toBe('4');
    // The operator leaves the HPA's replica count alone: a full resync writes nothing to the Deployment.
    const applies = operator?.controller.kube.writes.apply;
    operator?.controller.resync();
    await operator?.controller.queue.idle();
    expect(operator?.controller.kube.writes.apply).toBe(applies);
    expect(await jsonpath('hpa', 'deployment', 'busy', '{.spec.replicas}')).toBe('4');

    await setPodCpu('hpa', selector, '10m');
    await eventually(
      'back to one replica',
      async () => (await jsonpath('hpa', 'streamroom', 'busy', '{.status.ready}')) === '1/1',
      150_000,
      1000,
    );
    expect(await jsonpath('hpa', 'streamroom', 'busy', '{.status.phase}')).toBe('Ready');
  }, 330_000);

  it('brings 100 rooms applied at once to Ready', async () => {
    const rooms = Array.from({ length: 100 }, (_, i) => room(`room-${i}`, 'many'));
    await cluster.kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({ apiVersion: 'v1', kind: 'List', items: rooms }),
    );
    const ready = async () => {
      const list = JSON.parse(await cluster.kubectl(['get', 'streamrooms', '-n', 'many', '-o', 'json'])) as {
        items: { status?: { phase?: string } }[];
      };
      return list.items.filter((r) => r.status?.phase === 'Ready').length;
    };
    await eventually('100 rooms Ready', async () => (await ready()) === 100, 300_000, 1000);
    // Each room's own Deployment, and (replicas.max defaults to 10) each room's Redis.
    for (const name of ['streamroom', 'streamroom-redis']) {
      const deployments = await cluster.kubectl([
        'get',
        'deployments',
        '-n',
        'many',
        '-l',
        `app.kubernetes.io/name=${name}`,
        '-o',
        'name',
      ]);
      expect(deployments.trim().split('\n')).toHaveLength(100);
    }
    expect(operator?.controller.stats.reconcileErrors).toBe(0);
  }, 330_000);
});
