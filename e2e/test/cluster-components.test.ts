// The local cluster's typed pieces without a cluster: the configuration, each component's pure flag
// builder, the certificates (made with openssl, read back with node:crypto) and the supervisor.
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import {
  clusterPaths,
  configFromEnv,
  mergeSettings,
  resolveConfig,
  type ClusterConfig,
  type ClusterContext,
  type Ports,
} from '../src/cluster/config.js';
import { certArgs, pkiPlan, subject, writePki } from '../src/cluster/pki.js';
import { groupsToStop, parsePids, stopGroups, Supervisor } from '../src/cluster/supervisor.js';
import { neededTools } from '../src/cluster/up.js';
import * as etcd from '../src/cluster/components/etcd.js';
import * as apiserver from '../src/cluster/components/kube-apiserver.js';
import * as kcm from '../src/cluster/components/kube-controller-manager.js';
import * as scheduler from '../src/cluster/components/kube-scheduler.js';
import * as kwok from '../src/cluster/components/kwok.js';
import * as metricsServer from '../src/cluster/components/metrics-server.js';
import * as containerd from '../src/cluster/components/containerd.js';
import * as kubelet from '../src/cluster/components/kubelet.js';
import * as kubeProxy from '../src/cluster/components/kube-proxy.js';
import * as coredns from '../src/cluster/components/coredns.js';
import * as kubeRouter from '../src/cluster/components/kube-router.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'streamroom-components-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const PORTS: Ports = {
  etcd: 2001,
  etcdPeer: 2002,
  apiserver: 6443,
  controllerManager: 10257,
  scheduler: 10259,
  kwok: 10247,
  metricsServer: 4443,
  kubeletHealthz: 10248,
  proxyHealthz: 10256,
  proxyMetrics: 10249,
  corednsHealth: 8080,
  corednsReady: 8181,
};

function context(config: ClusterConfig): ClusterContext {
  return {
    config,
    paths: clusterPaths(config.dir),
    ports: PORTS,
    apiHost: config.realNode ? config.realNode.ip : '127.0.0.1',
    filesDir: '/repo/e2e/cluster',
    cniBinDir: config.realNode ? '/usr/lib/cni' : '',
    canLowerOomScore: true,
  };
}
const kwokCluster = () => context(resolveConfig({ dir: '/s' }));
const realCluster = () => context(resolveConfig({ dir: '/s', realNode: true }));
/** The value of --name=value in a flag list. */
const flag = (flags: string[], name: string) =>
  flags.find((f) => f.startsWith(`--${name}=`))?.slice(name.length + 3);

describe('ClusterConfig', () => {
  it('defaults: two kwok nodes, metrics-server, loopback, 100 QPS for the control plane', () => {
    const c = resolveConfig({});
    expect(c).toMatchObject({
      dir: '/tmp/streamroom-cluster',
      apiserverOnly: false,
      kwok: { nodes: 2, noScheduleTaint: false },
      metricsServer: true,
      advertiseAddress: '127.0.0.1',
      controlPlaneRateLimit: { qps: 100, burst: 100 },
      upTimeoutMs: 60_000,
    });
    expect(c.realNode).toBeUndefined();
  });

  it('apiserverOnly leaves out nodes and metrics-server', () => {
    const c = resolveConfig({ apiserverOnly: true, kwokNodes: 5, realNode: true });
    expect(c.kwok.nodes).toBe(0);
    expect(c.metricsServer).toBe(false);
    expect(c.realNode).toBeUndefined();
    expect(neededTools(c)).toEqual(['etcd', 'kube-apiserver']);
  });

  it('a real node: no kwok nodes by default, the node IP advertised, the node tools needed', () => {
    const c = resolveConfig({ realNode: true });
    expect(c.kwok.nodes).toBe(0);
    expect(c.advertiseAddress).toBe('10.250.0.1');
    expect(neededTools(c)).toEqual(
      expect.arrayContaining(['kubelet', 'kube-proxy', 'coredns', 'crictl', 'kube-router']),
    );
    expect(() => resolveConfig({ realNode: true, advertiseAddress: '127.0.0.1' })).toThrow(/node IP/);
  });

  it('rejects impossible settings', () => {
    expect(() => resolveConfig({ kwokNodes: -1 })).toThrow(/kwokNodes/);
    expect(() => resolveConfig({ kwokNodes: 1.5 })).toThrow(/kwokNodes/);
  });

  it('reads only the documented environment overrides', () => {
    const s = configFromEnv({
      HOME: '/home/x',
      STREAMROOM_CLUSTER_DIR: '/d',
      STREAMROOM_UP_TIMEOUT: '90',
      STREAMROOM_NETWORK_POLICY: '0',
      STREAMROOM_KWOK_NODES: '9', // (not an override: a test asks for its nodes in code)
    });
    expect(s).toEqual({
      cacheDir: '/home/x/.cache/streamroom',
      dir: '/d',
      upTimeoutMs: 90_000,
      node: { networkPolicy: false },
    });
    expect(() => configFromEnv({ STREAMROOM_UP_TIMEOUT: 'soon' })).toThrow(/STREAMROOM_UP_TIMEOUT/);
  });

  it('merges settings, later ones winning, node settings merged', () => {
    const m = mergeSettings(
      { kwokNodes: 1, node: { name: 'a' } },
      { kwokNodes: 3, node: { ip: '10.0.0.1' } },
    );
    expect(m).toEqual({ kwokNodes: 3, node: { name: 'a', ip: '10.0.0.1' } });
  });
});

describe('flag builders', () => {
  it('etcd: loopback client and peer URLs on the picked ports, data in the state dir', () => {
    const f = etcd.flags(kwokCluster());
    expect(flag(f, 'listen-client-urls')).toBe('http://127.0.0.1:2001');
    expect(flag(f, 'initial-cluster')).toBe('streamroom-e2e=http://127.0.0.1:2002');
    expect(flag(f, 'data-dir')).toBe('/s/etcd-data');
  });

  it('kube-apiserver: loopback without endpoint reconciler; with a real node the node IP and kubelet CA', () => {
    const k = apiserver.flags(kwokCluster());
    expect(flag(k, 'bind-address')).toBe('127.0.0.1');
    expect(flag(k, 'endpoint-reconciler-type')).toBe('none');
    expect(flag(k, 'etcd-servers')).toBe('http://127.0.0.1:2001');
    expect(flag(k, 'client-ca-file')).toBe('/s/pki/ca.crt');
    expect(flag(k, 'service-account-signing-key-file')).toBe('/s/pki/sa.key');
    expect(flag(k, 'kubelet-certificate-authority')).toBeUndefined();
    const r = apiserver.flags(realCluster());
    expect(flag(r, 'bind-address')).toBe('10.250.0.1');
    expect(flag(r, 'endpoint-reconciler-type')).toBe('lease');
    expect(flag(r, 'kubelet-certificate-authority')).toBe('/s/pki/ca.crt');
    expect(apiserver.loopback.flags(realCluster())).toEqual([
      'TCP-LISTEN:6443,bind=127.0.0.1,reuseaddr,fork',
      'TCP:10.250.0.1:6443',
    ]);
  });

  it('kube-controller-manager: its kubeconfig, the HPA sync period, node grace, the client rate limit', () => {
    const f = kcm.flags(
      context(resolveConfig({ dir: '/s', hpaSyncPeriod: '2s', nodeMonitorGracePeriod: '5m' })),
    );
    expect(flag(f, 'kubeconfig')).toBe('/s/kube-controller-manager.kubeconfig');
    expect(flag(f, 'horizontal-pod-autoscaler-sync-period')).toBe('2s');
    expect(flag(f, 'node-monitor-grace-period')).toBe('5m');
    expect(flag(f, 'kube-api-qps')).toBe('100');
    expect(flag(f, 'secure-port')).toBe('10257');
    const d = kcm.flags(context(resolveConfig({ dir: '/s', controlPlaneQps: 'default' })));
    expect(flag(d, 'kube-api-qps')).toBeUndefined();
    expect(flag(d, 'node-monitor-grace-period')).toBeUndefined();
  });

  it('kube-scheduler: its kubeconfig and port', () => {
    const f = scheduler.flags(kwokCluster());
    expect(flag(f, 'kubeconfig')).toBe('/s/kube-scheduler.kubeconfig');
    expect(flag(f, 'secure-port')).toBe('10259');
  });

  it('kwok: serving on its port with our certificate; its nodes have capacity and a podCIDR', () => {
    const f = kwok.flags(kwokCluster());
    expect(f.join(' ')).toContain('10247');
    expect(f.join(' ')).toContain('/s/pki/kwok-serving.crt');
    const n = kwok.nodeManifest(resolveConfig({ kwokNodePods: 7 }).kwok, 3) as {
      metadata: { name: string };
      spec: { podCIDR: string; taints?: unknown[] };
      status: { capacity: { pods: string } };
    };
    expect(n.metadata.name).toBe('kwok-node-3');
    expect(n.spec.podCIDR).toBe('10.244.3.0/24');
    expect(String(n.status.capacity.pods)).toBe('7');
    expect(n.spec.taints ?? []).toEqual([]);
  });

  it('metrics-server: TLS with our serving certificate; an APIService trusting our CA', () => {
    const ctx = kwokCluster();
    const f = metricsServer.flags(ctx);
    expect(flag(f, 'secure-port')).toBe('4443');
    expect(flag(f, 'tls-cert-file')).toBe('/s/pki/metrics-server-serving.crt');
    const kinds = metricsServer.apiServiceManifests(ctx, 'PEM').map((m) => (m as { kind: string }).kind);
    expect(kinds).toContain('APIService');
  });

  it('containerd: its own root, state and socket; the CNI bridge on the pod CIDR', () => {
    const ctx = realCluster();
    const node = ctx.config.realNode!;
    expect(containerd.socket(node)).toBe('/run/streamroom-containerd/containerd.sock');
    expect(containerd.flags(ctx)).toContain(containerd.configFile(ctx));
    const toml = containerd.configToml(ctx);
    expect(toml).toContain('root = "/var/lib/streamroom-containerd"');
    expect(toml).toContain('/usr/lib/cni');
    expect(JSON.stringify(containerd.cniConflist(ctx))).toContain('10.244.0.0/24');
  });

  it('kubelet: node name, IP and labels; its configuration serves on the node IP with our CA', () => {
    const ctx = realCluster();
    const f = kubelet.flags(ctx);
    expect(flag(f, 'hostname-override')).toBe('streamroom-node');
    expect(flag(f, 'node-ip')).toBe('10.250.0.1');
    expect(flag(f, 'node-labels')).toBe('streamroom.dev/node=real');
    expect(kubelet.configuration(ctx)).toMatchObject({
      address: '10.250.0.1',
      port: 10250,
      healthzPort: 10248,
      clusterDNS: ['10.250.0.1'],
      authentication: { x509: { clientCAFile: '/s/pki/ca.crt' } },
    });
    expect(() => kubelet.flags(kwokCluster())).toThrow(/real node/);
    expect(kubelet.nodeManifest(ctx.config.realNode!)).toMatchObject({ spec: { podCIDR: '10.244.0.0/24' } });
  });

  it('kube-proxy: its config file; the cluster CIDR and health port in the configuration', () => {
    const ctx = realCluster();
    expect(flag(kubeProxy.flags(ctx), 'config')).toBe(kubeProxy.configFile(ctx));
    const conf = JSON.stringify(kubeProxy.configuration(ctx));
    expect(conf).toContain('10.244.0.0/16');
    expect(conf).toContain('10256');
  });

  it('CoreDNS: answers on the node IP, cluster.local from the API server', () => {
    const ctx = realCluster();
    expect(coredns.flags(ctx).join(' ')).toContain(coredns.corefilePath(ctx));
    const corefile = coredns.corefile(ctx);
    expect(corefile).toContain('10.250.0.1');
    expect(corefile).toContain('cluster.local');
    expect(corefile).toContain('8181');
  });

  it('kube-router: only the NetworkPolicy controller; synced once its chain is jumped to', () => {
    const f = kubeRouter.flags(realCluster());
    expect(f).toEqual(expect.arrayContaining(['--run-firewall=true']));
    expect(f.join(' ')).not.toMatch(/--run-router=true|--run-service-proxy=true/);
    expect(kubeRouter.synced('', '')).toBe(false);
  });
});

describe('PKI', () => {
  it('plans the certificates of a kwok cluster and of a real node', () => {
    const names = (c: ClusterConfig) => pkiPlan(c).certs.map((s) => s.name);
    expect(names(resolveConfig({ apiserverOnly: true }))).not.toContain('kwok-serving');
    expect(names(resolveConfig({}))).toEqual(
      expect.arrayContaining(['apiserver', 'admin', 'kwok', 'metrics-server']),
    );
    expect(names(resolveConfig({ realNode: true }))).toEqual(
      expect.arrayContaining(['kubelet', 'kubelet-serving', 'kube-proxy', 'coredns', 'kube-router']),
    );
    const apiserverCert = pkiPlan(resolveConfig({ realNode: true })).certs.find(
      (s) => s.name === 'apiserver',
    );
    expect(apiserverCert?.ips).toEqual(['127.0.0.1', '10.250.0.1', '10.96.0.1']);
  });

  it('builds the openssl command of a leaf certificate', () => {
    const args = certArgs(
      '/p',
      {
        name: 'x',
        ca: 'ca',
        cn: 'system:node:n',
        o: ['system:nodes'],
        usage: ['clientAuth'],
        ips: ['10.0.0.1'],
      },
      30,
    );
    expect(args.slice(0, 8)).toEqual(['req', '-x509', '-new', '-key', '/p/x.key', '-sha256', '-days', '30']);
    expect(args).toEqual(
      expect.arrayContaining(['-subj', '/O=system:nodes/CN=system:node:n', '-CA', '/p/ca.crt']),
    );
    expect(args).toEqual(
      expect.arrayContaining(['extendedKeyUsage=clientAuth', 'subjectAltName=IP:10.0.0.1']),
    );
    expect(subject('a/b', ['c\\d'])).toBe('/O=c\\\\d/CN=a\\/b');
  });

  it('writes keys and certificates that verify against their CA (openssl, read by node:crypto)', async () => {
    const dir = path.join(tmp, 'pki');
    const plan = pkiPlan(resolveConfig({ realNode: true, kwokNodes: 1 }));
    await writePki(dir, plan, 30);
    const read = (name: string) => new X509Certificate(readFileSync(path.join(dir, `${name}.crt`)));
    const ca = read('ca');
    expect(ca.ca).toBe(true);
    for (const spec of plan.certs) {
      const cert = read(spec.name);
      expect(cert.ca).toBe(false);
      expect(cert.subject).toContain(`CN=${spec.cn}`);
      expect(cert.verify(read(spec.ca).publicKey)).toBe(true);
      expect(statSync(path.join(dir, `${spec.name}.key`)).mode & 0o777).toBe(0o600);
    }
    const api = read('apiserver');
    expect(api.checkIP('10.96.0.1')).toBe('10.96.0.1');
    expect(api.checkHost('kubernetes.default.svc')).toBe('kubernetes.default.svc');
    expect(read('admin').subject).toContain('O=system:masters');
    expect(read('admin').keyUsage).toContain('1.3.6.1.5.5.7.3.2'); // clientAuth
    expect(read('front-proxy-client').verify(read('front-proxy-ca').publicKey)).toBe(true);
    expect(read('front-proxy-client').verify(ca.publicKey)).toBe(false);
    expect(readFileSync(path.join(dir, 'sa.pub'), 'utf8')).toMatch(/^-----BEGIN PUBLIC KEY-----/);
  });

  it('says which certificate failed', async () => {
    const plan = {
      cas: [],
      certs: [{ name: 'x', ca: 'nope', cn: 'x', usage: ['clientAuth' as const] }],
      serviceAccountKey: 'sa',
    };
    await expect(writePki(path.join(tmp, 'bad'), plan)).rejects.toThrow(/certificate x: no CA named nope/);
  });
});

describe('Supervisor', () => {
  const paths = () => {
    const dir = mkdtempSync(path.join(tmp, 'sup-'));
    const p = clusterPaths(dir);
    mkdirSync(p.logs, { recursive: true });
    writeFileSync(p.pids, '');
    return p;
  };

  it('starts in order, records pids, waits for readiness, stops newest first', async () => {
    const p = paths();
    const sup = new Supervisor(p, 5000);
    const a = sup.start('a', 'sleep', ['30']);
    const b = sup.start('b', 'sleep', ['30']);
    expect(parsePids(readFileSync(p.pids, 'utf8')).map((r) => [r.name, r.pid])).toEqual([
      ['a', a.pid],
      ['b', b.pid],
    ]);
    let n = 0;
    await sup.waitFor('three polls', async () => ++n >= 3);
    const groups = groupsToStop(parsePids(readFileSync(p.pids, 'utf8')));
    expect(groups.map((g) => g.name)).toEqual(['b', 'a']);
    await stopGroups(groups, 2000, () => undefined);
    expect(groupsToStop(parsePids(readFileSync(p.pids, 'utf8')))).toEqual([]);
  });

  it('a component that dies while waited for is named with its log tail', async () => {
    const p = paths();
    const sup = new Supervisor(p, 10_000);
    sup.start('crasher', 'bash', ['-c', 'echo boom-detail; exit 3']);
    await expect(sup.waitFor('crasher ready', async () => false)).rejects.toThrow(
      /crasher \(pid \d+\) exited \(exit code 3\) while waiting for crasher ready[^]*boom-detail/,
    );
  });

  it('a wait that times out says what it waited for and the last error', async () => {
    const sup = new Supervisor(paths(), 300);
    await expect(
      sup.waitFor('the moon', async () => {
        throw new Error('not risen');
      }),
    ).rejects.toThrow(/timed out after 0.3s waiting for the moon \(last: not risen\)/);
  });
});
