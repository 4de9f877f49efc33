// NetworkPolicy is enforced for pods with real containers (e2e/src/cluster/dev.ts; on the local cluster
// by kube-router's policy controller on the real node, see e2e/cluster/README.md): what per-room
// isolation rests on. Two namespaces stand for two rooms, each with a tiny HTTP server and a client
// (streamroom/nettest, e2e/cluster/node/nettest); every check is a request made from inside a pod.
//   - without policies every pod reaches every other one;
//   - default-deny ingress in B plus "allow from namespace B": A -> B is refused, B -> B still works;
//   - an egress policy on B's client allowing only DNS and B's server: the client resolves names and
//     reaches B's server (by pod IP and through its Service), nothing else (A's server, the API server).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  eventually,
  loadImages,
  runCommand,
  startRealCluster,
  tagImage,
  type Cluster,
  type CommandResult,
} from '../src/cluster.js';
import { nodeImageTar } from '../src/cluster/artifacts.js';

const IMAGE = 'streamroom/nettest:0.1.0';
const RUN = `${process.pid}`;
const NS_A = `np-a-${RUN}`;
const NS_B = `np-b-${RUN}`;
/** How long a policy change may take to be enforced (kube-router: one sync, about 0.1 s). */
const ENFORCE_MS = 30_000;
let cluster: Cluster;
/** Pod IPs by `<namespace>/<pod>`. */
const ips = new Map<string, string>();

const nettestPod = (name: string, app: string, args: string[]) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, labels: { app } },
  spec: {
    terminationGracePeriodSeconds: 1,
    containers: [
      {
        name: 'nettest',
        image: IMAGE,
        imagePullPolicy: 'IfNotPresent',
        args,
        ...(args[0] === 'serve'
          ? { readinessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 1 } }
          : {}),
      },
    ],
  },
});
const list = (items: object[]) => JSON.stringify({ apiVersion: 'v1', kind: 'List', items });
const policy = (name: string, spec: object) => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name },
  spec,
});

/** `nettest <args>` in a pod: its exit code and output (a refused connection exits 1). */
const nettest = (ns: string, pod: string, ...args: string[]): Promise<CommandResult> =>
  cluster.kubectlResult(['exec', '-n', ns, pod, '--request-timeout=20s', '--', '/nettest', ...args]);
const get = (ns: string, pod: string, url: string) => nettest(ns, pod, 'get', url);
const serverUrl = (ns: string) => `http://${ips.get(`${ns}/server`)}:8080/`;

/** The request answers (from the server the URL names). */
async function expectReaches(ns: string, pod: string, url: string): Promise<void> {
  const r = await get(ns, pod, url);
  expect({ from: `${ns}/${pod}`, url, code: r.code, out: r.stdout.trim(), err: r.stderr.trim() }).toEqual({
    from: `${ns}/${pod}`,
    url,
    code: 0,
    out: 'hello from server',
    err: '',
  });
}

/** A request that fails at the network (refused by a reject rule, or dropped: a timeout), not in kubectl. */
const blocked = (r: CommandResult) =>
  r.code !== 0 && /connection refused|i\/o timeout|Client\.Timeout|deadline exceeded/.test(r.stderr);

/** Waits until the request is blocked (a policy just applied); returns how long that took. */
async function expectBlocked(ns: string, pod: string, url: string): Promise<number> {
  const t0 = Date.now();
  let last: CommandResult | undefined;
  await eventually(
    `${ns}/${pod} -> ${url} blocked`,
    async () => blocked((last = await get(ns, pod, url))),
    ENFORCE_MS,
    200,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last answer: ${JSON.stringify(last)}`);
  });
  return Date.now() - t0;
}

/** streamroom/nettest into the cluster's node(s): the local cluster's containerd, or kind's. */
async function loadNettest(): Promise<void> {
  if (existsSync(path.join(cluster.dir, 'pids'))) return loadImages(cluster, ['nettest']);
  const r = await runCommand('docker', ['load', '-i', await nodeImageTar('nettest')], process.env);
  if (r.code !== 0) throw new Error(`docker load of the nettest image failed:\n${r.stderr.slice(-3000)}`);
  await tagImage(IMAGE, IMAGE);
}

beforeAll(async () => {
  cluster = await startRealCluster();
  await loadNettest();
  for (const ns of [NS_A, NS_B]) {
    await cluster.kubectl(['create', 'namespace', ns]);
    // pods are refused until the controller-manager has made the namespace's default ServiceAccount
    await eventually(`ServiceAccount ${ns}/default`, async () =>
      (await cluster.kubectlResult(['get', 'serviceaccount', 'default', '-n', ns])).code === 0
        ? true
        : undefined,
    );
    const items: object[] = [
      nettestPod('server', 'server', ['serve', ':8080']),
      nettestPod('client', 'client', ['sleep']),
    ];
    if (ns === NS_B) {
      items.push({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'server' },
        spec: { selector: { app: 'server' }, ports: [{ port: 80, targetPort: 8080 }] },
      });
    }
    await cluster.kubectl(['apply', '-n', ns, '-f', '-'], list(items));
  }
  for (const ns of [NS_A, NS_B]) {
    await cluster.kubectl(['wait', '-n', ns, '--for=condition=Ready', 'pod', '--all', '--timeout=90s']);
    const out = await cluster.kubectl([
      'get',
      'pods',
      '-n',
      ns,
      '-o',
      'jsonpath={range .items[*]}{.metadata.name} {.status.podIP}{"\\n"}{end}',
    ]);
    for (const line of out.trim().split('\n')) {
      const [name, ip] = line.split(' ');
      if (name && ip) ips.set(`${ns}/${name}`, ip);
    }
  }
}, 3_600_000);

afterAll(async () => {
  // bounded: the pods stop within their 1 s grace period
  await cluster?.kubectlResult(['delete', 'namespace', NS_A, NS_B, '--wait=true', '--timeout=60s']);
  await cluster?.stop();
}, 180_000);

describe('NetworkPolicy on pods with real containers', () => {
  it('lets every pod reach every other one while no policy selects them', async () => {
    await expectReaches(NS_A, 'client', serverUrl(NS_B));
    await expectReaches(NS_B, 'client', serverUrl(NS_B));
    await expectReaches(NS_B, 'client', serverUrl(NS_A));
    // the API server through the kubernetes Service, with the pod's service account
    const api = await nettest(NS_B, 'client', 'api', '/version');
    expect({ code: api.code, err: api.stderr.trim() }).toEqual({ code: 0, err: '' });
    // B's Service by DNS name (CoreDNS may need a moment for the new Service)
    await eventually(
      `${NS_B}/client -> server.${NS_B}.svc`,
      async () => (await get(NS_B, 'client', `http://server.${NS_B}.svc.cluster.local/`)).code === 0,
      30_000,
      500,
    );
  }, 60_000);

  it('refuses A -> B after default-deny ingress in B plus allow-from-B, while B -> B still works', async () => {
    await cluster.kubectl(
      ['apply', '-n', NS_B, '-f', '-'],
      list([
        policy('default-deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] }),
        policy('allow-from-namespace-b', {
          podSelector: {},
          policyTypes: ['Ingress'],
          ingress: [
            { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NS_B } } }] },
          ],
        }),
      ]),
    );
    const ms = await expectBlocked(NS_A, 'client', serverUrl(NS_B));
    console.log(`[netpol] ingress policy enforced ${ms} ms after apply`);
    expect(blocked(await get(NS_A, 'server', `http://server.${NS_B}.svc.cluster.local/`))).toBe(true);
    // B -> B (by pod IP and through B's Service), A -> A and B -> A (no egress rule yet) are untouched
    await expectReaches(NS_B, 'client', serverUrl(NS_B));
    await expectReaches(NS_B, 'client', `http://server.${NS_B}.svc.cluster.local/`);
    await expectReaches(NS_A, 'client', serverUrl(NS_A));
    await expectReaches(NS_B, 'client', serverUrl(NS_A));
  }, 60_000);

  it("allows B's client only DNS and B's server once an egress policy selects it", async () => {
    await cluster.kubectl(
      ['apply', '-n', NS_B, '-f', '-'],
      list([
        policy('client-egress', {
          podSelector: { matchLabels: { app: 'client' } },
          policyTypes: ['Egress'],
          egress: [
            {
              ports: [
                { protocol: 'UDP', port: 53 },
                { protocol: 'TCP', port: 53 },
              ],
            },
            {
              to: [{ podSelector: { matchLabels: { app: 'server' } } }],
              ports: [{ protocol: 'TCP', port: 8080 }],
            },
          ],
        }),
      ]),
    );
    const ms = await expectBlocked(NS_B, 'client', serverUrl(NS_A));
    console.log(`[netpol] egress policy enforced ${ms} ms after apply`);
    // DNS still resolves, and the one allowed destination answers (its Service is DNATed to it)
    const lookup = await nettest(NS_B, 'client', 'lookup', `server.${NS_B}.svc.cluster.local`);
    expect({ code: lookup.code, err: lookup.stderr.trim() }).toEqual({ code: 0, err: '' });
    expect(lookup.stdout.trim()).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    await expectReaches(NS_B, 'client', serverUrl(NS_B));
    await expectReaches(NS_B, 'client', `http://server.${NS_B}.svc.cluster.local/`);
    // everything else is blocked, e.g. the API server (kubernetes.default.svc), reachable before
    expect(blocked(await nettest(NS_B, 'client', 'api', '/version'))).toBe(true);
    // B's server is not selected by the egress policy: it still reaches A
    await expectReaches(NS_B, 'server', serverUrl(NS_A));
  }, 60_000);
});
