// The StreamRoom CRD against a real kube-apiserver: it installs, every example is accepted with its
// defaults filled in, and every invalid fixture is rejected with the message it names.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startCluster, REPO_DIR, E2E_DIR, type Cluster } from '../src/cluster.js';
import { installCrd } from '../src/operator.js';

const EXAMPLES = path.join(REPO_DIR, 'examples');
const INVALID = path.join(E2E_DIR, 'fixtures', 'invalid');
const examples = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml'));
const invalid = readdirSync(INVALID)
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => {
    const text = readFileSync(path.join(INVALID, f), 'utf8');
    const expected = /^# expect: (.+)$/m.exec(text)?.[1];
    if (!expected) throw new Error(`${f} has no "# expect: <message>" line`);
    return [f, expected] as const;
  });

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster({ apiserverOnly: true });
  await installCrd(cluster);
}, 180_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

describe('the StreamRoom CRD on a real API server', () => {
  it('has a fixture for each invalid case and an example for each documented use', () => {
    expect(invalid.length).toBeGreaterThanOrEqual(10);
    expect(examples.sort()).toEqual([
      'autoscaled-room.yaml',
      'basic-room.yaml',
      'ingress-tls-room.yaml',
      'private-room.yaml',
      'suspended-room.yaml',
    ]);
  });

  it.each(examples)('accepts examples/%s', async (file) => {
    const out = await cluster.kubectl(['apply', '-n', 'default', '-f', path.join(EXAMPLES, file)]);
    expect(out).toMatch(/streamroom\.streamroom\.dev\/\S+ created/);
  });

  it('fills in the defaults of the spec', async () => {
    const spec = JSON.parse(
      await cluster.kubectl(['get', 'streamroom', 'basic', '-n', 'default', '-o', 'jsonpath={.spec}']),
    );
    expect(spec).toEqual({
      title: 'My first room',
      private: false,
      replicas: { min: 1, max: 10 },
      autoscaling: { targetCPUUtilizationPercentage: 60, scaleDownStabilizationWindowSeconds: 300 },
      expose: { type: 'NodePort', port: 80 },
      chat: { enabled: true, historySize: 50, maxMessageLength: 500, messagesPerMinute: 20 },
      media: { mode: 'SFU' },
      suspend: false,
    });
  });

  it.each(invalid)('rejects %s: "%s"', async (file, expected) => {
    const r = await cluster.kubectlResult(['apply', '-n', 'default', '-f', path.join(INVALID, file)]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(expected);
  });

  it('shows Phase, Ready, Live, Viewers, URL and Age in kubectl get, by its short name too', async () => {
    const out = await cluster.kubectl(['get', 'room', '-n', 'default']);
    expect(out.split('\n')[0]).toMatch(/^NAME\s+PHASE\s+READY\s+LIVE\s+VIEWERS\s+URL\s+AGE$/);
    expect(out).toMatch(/^basic\s/m);
  });

  it('explains its fields', async () => {
    const out = await cluster.kubectl(['explain', 'streamroom.spec.replicas']);
    expect(out).toContain('Bounds for the number of room server replicas');
    expect(out).toMatch(/max\s+<integer>/);
  });
});
