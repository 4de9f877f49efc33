// Brings a local cluster up, in order, each step waiting for the one before to be ready: (the real
// node's host setup,) binaries, ports, certificates, etcd, kube-apiserver, (containerd,)
// kube-controller-manager, kube-scheduler, kwok, metrics-server, (kubelet, kube-proxy, CoreDNS,
// kube-router,) the owner watchdog, the env file. Progress lines with the elapsed time; on failure
// the components' log tails, and everything stopped again (unless keepOnFailure).
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { stringify } from 'yaml';
import { buildTools, FILES_DIR, REPO_DIR, toolPath, type Tool } from './artifacts.js';
import {
  clusterPaths,
  kubeconfigPath,
  NODE_PORT_NAMES,
  pkiFile,
  PORT_NAMES,
  type ClusterConfig,
  type ClusterContext,
  type ClusterPaths,
  type PortName,
  type Ports,
} from './config.js';
import { check, describeError, progress, runCommand, type Progress } from './exec.js';
import { kubeconfig, kubeconfigUsers } from './kubeconfig.js';
import { loadImages } from './images.js';
import * as node from './node.js';
import { pkiPlan, writePki } from './pki.js';
import { alive, logTail, readPids, Supervisor } from './supervisor.js';
import { down, removeStateDir } from './down.js';
import * as etcd from './components/etcd.js';
import * as apiserver from './components/kube-apiserver.js';
import * as kcm from './components/kube-controller-manager.js';
import * as scheduler from './components/kube-scheduler.js';
import * as kwok from './components/kwok.js';
import * as metricsServer from './components/metrics-server.js';
import * as containerd from './components/containerd.js';
import * as kubelet from './components/kubelet.js';
import * as kubeProxy from './components/kube-proxy.js';
import * as coredns from './components/coredns.js';
import * as kubeRouter from './components/kube-router.js';

export interface UpResult {
  dir: string;
  kubeconfig: string;
  /** `export KUBECONFIG=...`, for eval. */
  exportLine: string;
  ports: Ports;
}

/** The binaries a configuration runs. */
export function neededTools(config: ClusterConfig): Tool[] {
  const tools: Tool[] = ['etcd', 'kube-apiserver'];
  if (!config.apiserverOnly) tools.push('kube-controller-manager', 'kube-scheduler');
  if (config.kwok.nodes > 0 || config.metricsServer || config.realNode) tools.push('kubectl');
  if (config.kwok.nodes > 0) tools.push('kwok');
  if (config.metricsServer) tools.push('metrics-server');
  if (config.realNode) tools.push('kubelet', 'kube-proxy', 'coredns', 'crictl');
  if (config.realNode?.networkPolicy) tools.push('kube-router');
  return tools;
}

/** n distinct free ports on 127.0.0.1 (all held until all are picked). */
export async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', resolve);
      });
      servers.push(s);
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

async function pickPorts(config: ClusterConfig): Promise<Ports> {
  const names: PortName[] = [...PORT_NAMES, ...(config.realNode ? NODE_PORT_NAMES : [])];
  const free = await freePorts(names.length);
  // (unused names of a cluster without a real node get 0)
  const ports = Object.fromEntries([...PORT_NAMES, ...NODE_PORT_NAMES].map((n) => [n, 0])) as Ports;
  names.forEach((name, i) => (ports[name] = config.fixedPorts[name] ?? free[i] ?? 0));
  return ports;
}

interface TlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
}

/** GET a URL (http or https, our CA, an optional client certificate); status and body. */
export function httpGet(
  url: string,
  tls: TlsFiles = {},
  timeoutMs = 2000,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const read = (f?: string) => (f ? readFileSync(f) : undefined);
    const https = url.startsWith('https:');
    const options = https
      ? {
          ca: read(tls.ca),
          cert: read(tls.cert),
          key: read(tls.key),
          rejectUnauthorized: tls.ca !== undefined,
        }
      : {};
    const req = (https ? httpsRequest : httpRequest)(url, { ...options, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

const ok = async (url: string, tls: TlsFiles = {}) => (await httpGet(url, tls)).status === 200;

/**
 * Starts a cluster; resolves once every component is ready. The ports are picked free at the start;
 * when another process takes one before its component binds it (many clusters on one machine), the
 * cluster is started again once with other ports.
 */
export async function up(config: ClusterConfig, log: Progress = progress('up')): Promise<UpResult> {
  try {
    return await upOnce(config, log);
  } catch (err) {
    if (!/address already in use/.test(describeError(err)) || config.keepOnFailure) throw err;
    log('a port was taken by another process meanwhile; starting again with other ports');
    return upOnce(config, log);
  }
}

async function upOnce(config: ClusterConfig, log: Progress): Promise<UpResult> {
  const paths = clusterPaths(config.dir);
  for (const r of readPids(paths)) {
    if (alive(r.pid)) {
      throw new Error(
        `a cluster is already running from ${config.dir} (${r.name}, pid ${r.pid}); stop it first (down)`,
      );
    }
  }
  let release: (() => void) | undefined;
  let started = false;
  try {
    let cniBinDir = '';
    if (config.realNode) {
      const realNode = config.realNode;
      cniBinDir = await node.preflight(realNode);
      release = node.acquireLock(realNode);
      const other = node.runningElsewhere(realNode);
      if (other) {
        throw new Error(
          `a real-node cluster is already running from ${other} (only one per machine); ` +
            `stop it with: STREAMROOM_CLUSTER_DIR=${other} npx tsx e2e/src/cluster/cli.ts down`,
        );
      }
      const busy = await node.portInUse(realNode.kubeletPort);
      if (busy) throw new Error(`port ${realNode.kubeletPort} is in use (another kubelet?): ${busy}`);
      if (await node.leftovers(realNode)) {
        log('removing what a real node that was not stopped left');
        await node.cleanupStale({ clusterDir: config.dir, node: realNode, cniBinDir }, log);
      }
    }
    removeStateDir(config.dir);
    for (const d of [paths.pki, paths.logs, paths.etcdData]) mkdirSync(d, { recursive: true });
    writeFileSync(paths.marker, '');
    chmodSync(paths.etcdData, 0o700);
    writeFileSync(paths.pids, '');
    started = true;
    if (config.realNode) {
      // from here on down (also the one on failure) cleans the node up
      node.saveNodeState({ clusterDir: config.dir, node: config.realNode, cniBinDir });
      writeFileSync(config.realNode.marker, config.dir);
      node.saveSysctls(paths);
      await node.netUp(config.realNode);
    }
    const result = await start(config, paths, cniBinDir, log);
    log(`cluster up (state: ${config.dir}; logs: ${paths.logs})`);
    return result;
  } catch (err) {
    if (!started) throw err;
    const tails = readdirSync(paths.logs)
      .filter((f) => f.endsWith('.log'))
      .map((f) => `----- ${path.join(paths.logs, f)}\n${logTail(paths, f.replace(/\.log$/, ''))}`);
    log(`FAILED: ${describeError(err)}`);
    if (config.keepOnFailure) log(`keeping the processes and ${config.dir} (keepOnFailure)`);
    else await down(config.dir, { log: progress('down', log.sink), timeoutMs: config.downTimeoutMs });
    throw new Error(`starting the cluster in ${config.dir}: ${describeError(err)}\n${tails.join('\n')}`, {
      cause: err,
    });
  } finally {
    release?.();
  }
}

/** Runs a step; an error says which. */
async function step<T>(what: string, fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (cause) {
    throw new Error(what, { cause });
  }
}

async function start(config: ClusterConfig, paths: ClusterPaths, cniBinDir: string, log: Progress) {
  const realNode = config.realNode;
  const tools = neededTools(config);
  const bin = Object.fromEntries(tools.map((t) => [t, toolPath(t, config.cacheDir)])) as Record<Tool, string>;
  const missing = tools.filter((t) => !existsSync(bin[t]));
  if (missing.length) {
    if (!config.build)
      throw new Error(
        `missing binaries: ${missing.join(' ')} (build them: npx tsx e2e/src/build/cli.ts tools)`,
      );
    log(`building missing binaries: ${missing.join(' ')}`);
    await buildTools(missing);
  }
  const ports = await pickPorts(config);
  const ctx: ClusterContext = {
    config,
    paths,
    ports,
    apiHost: realNode ? realNode.ip : '127.0.0.1',
    filesDir: FILES_DIR,
    cniBinDir,
    canLowerOomScore: realNode ? node.canLowerOomScore() : true,
  };

  await step('creating the certificates and kubeconfigs', async () => {
    await writePki(paths.pki, pkiPlan(config));
    const caPem = readFileSync(pkiFile(paths, 'ca', 'crt'), 'utf8');
    for (const user of kubeconfigUsers(config)) {
      const host = user === 'admin' ? '127.0.0.1' : ctx.apiHost;
      const file = kubeconfigPath(paths, user);
      writeFileSync(
        file,
        kubeconfig({
          server: `https://${host}:${ports.apiserver}`,
          caPem,
          certPem: readFileSync(pkiFile(paths, user, 'crt'), 'utf8'),
          keyPem: readFileSync(pkiFile(paths, user, 'key'), 'utf8'),
          user,
        }),
        { mode: 0o600 },
      );
    }
    if (realNode) node.writeNodeConfigs(ctx);
  });
  log('certificates and kubeconfigs written');

  const sup = new Supervisor(paths, config.upTimeoutMs);
  const admin: TlsFiles = {
    ca: pkiFile(paths, 'ca', 'crt'),
    cert: pkiFile(paths, 'admin', 'crt'),
    key: pkiFile(paths, 'admin', 'key'),
  };
  const api = async (p: string) => {
    const r = await httpGet(`${apiserver.url(ctx)}${p}`, admin);
    if (r.status !== 200) throw new Error(`GET ${p}: HTTP ${r.status} ${r.body.slice(0, 200)}`);
    return JSON.parse(r.body) as unknown;
  };
  const which = (cmd: string) => check('bash', ['-c', 'command -v "$1"', '_', cmd]).then((s) => s.trim());

  if (realNode) {
    // first, so that it is up (to load the pause image) by the time the API server is
    sup.start(containerd.name, await which('containerd'), containerd.flags(ctx));
  }
  sup.start(etcd.name, bin.etcd, etcd.flags(ctx));
  await sup.waitFor('etcd /health', () => ok(etcd.healthUrl(ctx)));
  log(`etcd ready on 127.0.0.1:${ports.etcd}`);

  sup.start(apiserver.name, bin['kube-apiserver'], apiserver.flags(ctx));
  if (realNode) sup.start(apiserver.loopback.name, await which('socat'), apiserver.loopback.flags(ctx));
  await sup.waitFor('kube-apiserver /readyz', () => ok(`${apiserver.url(ctx)}/readyz`, admin));
  log(`kube-apiserver ready on https://${ctx.apiHost}:${ports.apiserver}`);

  if (realNode) {
    const sock = containerd.socket(realNode);
    await sup.waitFor(
      `containerd (${sock})`,
      async () => (await runCommand('ctr', ['--address', sock, 'version'])).code === 0,
    );
    await step('loading the pause image', () => loadImages(config.dir, ['pause'], () => undefined));
    log('containerd ready, pause image loaded');
  }

  if (!config.apiserverOnly) {
    sup.start(kcm.name, bin['kube-controller-manager'], kcm.flags(ctx));
    sup.start(scheduler.name, bin['kube-scheduler'], scheduler.flags(ctx));
    if (config.kwok.nodes > 0) sup.start(kwok.name, bin.kwok, kwok.flags(ctx));
    if (config.metricsServer) sup.start(metricsServer.name, bin['metrics-server'], metricsServer.flags(ctx));

    const manifests: string[] = [];
    for (let i = 1; i <= config.kwok.nodes; i++) manifests.push(stringify(kwok.nodeManifest(config.kwok, i)));
    if (config.metricsServer) {
      const caPem = readFileSync(pkiFile(paths, 'ca', 'crt'), 'utf8');
      manifests.push(...metricsServer.apiServiceManifests(ctx, caPem).map((m) => stringify(m)));
    }
    if (realNode) {
      manifests.push(stringify(kubelet.nodeManifest(realNode)));
      manifests.push(readFileSync(path.join(FILES_DIR, 'node', 'coredns-rbac.yaml'), 'utf8'));
      if (realNode.networkPolicy) {
        manifests.push(readFileSync(path.join(FILES_DIR, 'node', 'kube-router-rbac.yaml'), 'utf8'));
      }
    }
    if (manifests.length) {
      await sup.waitFor(
        'the kube-system namespace',
        async () => (await api('/api/v1/namespaces/kube-system')) !== undefined,
      );
      await step('creating the nodes, APIService and RBAC objects', () =>
        check(bin.kubectl, ['--kubeconfig', paths.kubeconfig, '--request-timeout=20s', 'create', '-f', '-'], {
          input: manifests.join('\n---\n'),
        }),
      );
    }

    await sup.waitFor('kube-controller-manager /healthz', () => ok(kcm.healthUrl(ctx)));
    await sup.waitFor('kube-scheduler /readyz', () => ok(scheduler.readyUrl(ctx)));
    log(
      `kube-controller-manager (:${ports.controllerManager}) and kube-scheduler (:${ports.scheduler}) healthy`,
    );

    const readyNodes = async (selector: string) => {
      const list = (await api(`/api/v1/nodes?labelSelector=${encodeURIComponent(selector)}`)) as {
        items: { status?: { conditions?: { type: string; status: string }[] } }[];
      };
      return list.items.filter((n) =>
        n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
      ).length;
    };
    if (config.kwok.nodes > 0) {
      await sup.waitFor('kwok /healthz', () => ok(kwok.healthUrl(ctx), { ca: admin.ca }));
      await sup.waitFor(
        `${config.kwok.nodes} kwok nodes Ready`,
        async () => (await readyNodes('type=kwok')) === config.kwok.nodes,
      );
      log(`kwok (:${ports.kwok}): ${config.kwok.nodes} nodes Ready`);
    }

    if (realNode) {
      sup.start(kubelet.name, bin.kubelet, kubelet.flags(ctx));
      sup.start(kubeProxy.name, bin['kube-proxy'], kubeProxy.flags(ctx));
      sup.start(coredns.name, bin.coredns, coredns.flags(ctx));
      await sup.waitFor('kubelet /healthz', () => ok(kubelet.healthUrl(ctx)));
      await sup.waitFor(
        `node ${realNode.name} Ready`,
        async () => (await readyNodes(`kubernetes.io/hostname=${realNode.name}`)) === 1,
      );
      await sup.waitFor('kube-proxy /healthz', () => ok(kubeProxy.healthUrl(ctx)));
      if (realNode.networkPolicy) {
        // started after kube-proxy's first sync, so that kube-proxy's jumps do not land before its own
        await step('adding the nftables rule for Services without endpoints', () =>
          node.netpolUp(realNode, config.serviceCidr),
        );
        sup.start(kubeRouter.name, bin['kube-router'], kubeRouter.flags(ctx));
      }
      await sup.waitFor('CoreDNS /ready', () => ok(coredns.readyUrl(ctx)));
      if (realNode.networkPolicy) {
        await sup.waitFor(
          "kube-router's first NetworkPolicy sync (iptables KUBE-ROUTER-FORWARD)",
          node.netpolSynced,
        );
      }
      log(
        `real node ${realNode.name} (${realNode.ip}) Ready: kubelet :${realNode.kubeletPort}, kube-proxy, ` +
          `CoreDNS ${realNode.ip}:53${realNode.networkPolicy ? ', kube-router (NetworkPolicy)' : ''}`,
      );
    }

    if (config.metricsServer) {
      await sup.waitFor('APIService v1beta1.metrics.k8s.io Available', async () => {
        const s = (await api('/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io')) as {
          status?: { conditions?: { type: string; status: string }[] };
        };
        return s.status?.conditions?.some((c) => c.type === 'Available' && c.status === 'True') ?? false;
      });
      log(`metrics-server (:${ports.metricsServer}) serving metrics.k8s.io`);
    }
  }

  if (config.ownerPid !== undefined) startWatchdog(sup, config);

  const env = [
    `export KUBECONFIG=${paths.kubeconfig}`,
    `export STREAMROOM_APISERVER_URL=${apiserver.url(ctx)}`,
    `export STREAMROOM_ETCD_URL=http://127.0.0.1:${ports.etcd}`,
    `export STREAMROOM_CA_FILE=${pkiFile(paths, 'ca', 'crt')}`,
  ];
  if (config.kwok.nodes > 0) env.push(`export STREAMROOM_KWOK_URL=https://127.0.0.1:${ports.kwok}`);
  if (config.metricsServer)
    env.push(`export STREAMROOM_METRICS_SERVER_URL=https://127.0.0.1:${ports.metricsServer}`);
  if (realNode) {
    env.push(
      'export STREAMROOM_REAL_NODE=1',
      `export STREAMROOM_NODE_NAME=${realNode.name}`,
      `export STREAMROOM_NODE_IP=${realNode.ip}`,
      `export CONTAINER_RUNTIME_ENDPOINT=unix://${containerd.socket(realNode)}`,
    );
  }
  writeFileSync(paths.env, `${env.join('\n')}\n`);
  return {
    dir: config.dir,
    kubeconfig: paths.kubeconfig,
    exportLine: `export KUBECONFIG=${paths.kubeconfig}`,
    ports,
  };
}

/**
 * Tears the cluster down when the owning process (e.g. the test runner) exits, even on a crash: a
 * few lines of bash that wait for it, then run down (recorded like a component, so down stops the
 * watchdog too when called first).
 */
function startWatchdog(sup: Supervisor, config: ClusterConfig): void {
  const tsx = path.join(REPO_DIR, 'node_modules', '.bin', 'tsx');
  const cli = path.join(REPO_DIR, 'e2e', 'src', 'cluster', 'cli.ts');
  const script = 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2" "$3" down --dir "$4"';
  sup.start('watchdog', 'bash', ['-c', script, 'watchdog', String(config.ownerPid), tsx, cli, config.dir], {
    ...process.env,
    STREAMROOM_DOWN_TIMEOUT: String(config.downTimeoutMs / 1000),
  });
}
