// The chart's ValidatingAdmissionPolicy against a real API server: rooms whose image or Ingress host the
// cluster admin did not allow are refused at `kubectl apply`, with a message that says why.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { eventually, startCluster, type Cluster } from '../src/cluster.js';
import { CHART_DIR, helmBinary, helmFor } from '../src/helm.js';
import { installCrd, roomManifest } from '../src/operator.js';

let cluster: Cluster;

const apply = (name: string, namespace: string, spec: object) =>
  cluster.kubectlResult(
    ['apply', '--dry-run=server', '-f', '-'],
    JSON.stringify(roomManifest(name, namespace, spec)),
  );

beforeAll(async () => {
  cluster = await startCluster({ apiserverOnly: true });
  await installCrd(cluster);
  for (const ns of ['streamroom-system', 'team-a', 'team-b'])
    await cluster.kubectl(['create', 'namespace', ns]);
  const helm = helmFor(await helmBinary(), cluster);
  const manifests = await helm.run([
    'template',
    'streamroom-operator',
    CHART_DIR,
    '-n',
    'streamroom-system',
    '--show-only',
    'templates/admission-policy.yaml',
    '--set',
    'policy.allowedImages={registry.example.com/rooms/}',
    '--set',
    'policy.allowedIngressHosts.team-a={a.example.com}',
  ]);
  await cluster.kubectl(['apply', '-f', '-'], manifests);
  // the binding takes effect within a few seconds of being created
  await eventually(
    'the policy refusing a foreign image',
    async () => (await apply('probe', 'team-a', { image: 'evil.example.com/x:1' })).code !== 0,
    30_000,
    500,
  );
}, 240_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

describe("the chart's admission policy", () => {
  it('accepts allowed images and the default one, refuses others with a reason', async () => {
    expect((await apply('ok', 'team-a', { image: 'registry.example.com/rooms/room:2' })).code).toBe(0);
    expect((await apply('default', 'team-a', {})).code).toBe(0);
    const r = await apply('miner', 'team-a', { image: 'evil.example.com/miner:1' });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(
      /spec.image evil.example.com\/miner:1 is not allowed here: images must start with one of registry.example.com\/rooms\//,
    );
  });

  it('lets a namespace claim only its own Ingress hosts', async () => {
    const ingress = (host: string) => ({ expose: { type: 'Ingress', host } });
    expect((await apply('live', 'team-a', ingress('live.a.example.com'))).code).toBe(0);
    expect((await apply('wild', 'team-a', ingress('*.a.example.com'))).code).toBe(0);
    for (const [ns, host] of [
      ['team-a', 'shop.b.example.com'],
      ['team-a', '*.example.com'], // everything under example.com, other teams' names included
      ['team-b', 'live.a.example.com'], // another team's name
    ] as const) {
      const r = await apply('claim', ns, ingress(host));
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`expose.host ${host} is not allowed in namespace ${ns}`);
    }
  });
});
