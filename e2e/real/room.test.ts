// End to end on a cluster whose pods run real containers (e2e/scripts/cluster.sh: the local cluster
// with a real node, or kind): the operator runs in the cluster from its image (Helm chart), rooms are
// applied as a user would, and real Chromium pages stream and chat through the URL from the room's
// status. Numbers (apply to first frame, pod memory) go to test-artifacts/e2e-metrics.json.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { io as ioClient, type Socket } from 'socket.io-client';
import {
  CHROMIUM_ARGS,
  CHROMIUM_PATH,
  expectVideoPlaying,
  openBroadcaster,
  openRoomPage,
  waitForFrames,
} from '../../room-image/test/browser-helpers.js';
import { eventually, REPO_DIR, runCommand, startRealCluster, type Cluster } from '../src/cluster.js';
import { roomManifest } from '../src/operator.js';

const NS = 'e2e-rooms';
const ARTIFACTS = path.join(REPO_DIR, 'test-artifacts');
const metrics: Record<string, unknown> = {};
let cluster: Cluster;
let browser: Browser;
const contexts: BrowserContext[] = [];
const forwards: ChildProcess[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const kubectl = (args: string[], input?: string) => cluster.kubectl([...args, '-n', NS], input);
const jsonpath = async (kind: string, name: string, expr: string) => {
  const r = await cluster.kubectlResult(['get', kind, name, '-n', NS, '-o', `jsonpath=${expr}`]);
  return r.code === 0 ? r.stdout : undefined;
};
const applyRoom = (name: string, spec: object) =>
  kubectl(['apply', '-f', '-'], JSON.stringify(roomManifest(name, NS, spec)));
const secretValue = async (name: string, key: string) =>
  Buffer.from((await jsonpath('secret', name, `{.data.${key}}`)) ?? '', 'base64').toString();

function record(name: string, value: unknown): void {
  metrics[name] = value;
  console.log(`[e2e] ${name} = ${JSON.stringify(value)}`);
}

/** Waits for phase Ready with `ready` replicas and returns the room's URL. */
async function readyRoom(name: string, ready: string, timeoutMs = 240_000): Promise<string> {
  return eventually(
    `room ${name} Ready ${ready}`,
    async () => {
      const out = await jsonpath('streamroom', name, '{.status.phase} {.status.ready} {.status.url}');
      const [phase, r, url] = (out ?? '').split(' ');
      return phase === 'Ready' && r === ready && url ? url : undefined;
    },
    timeoutMs,
    1000,
  );
}

/** Memory working set (MiB) of a room's pods, from the metrics API, once metrics-server has them. */
async function podMemoryMiB(room: string): Promise<number[]> {
  return eventually(
    `metrics of ${room}`,
    async () => {
      const raw = await cluster.kubectl([
        'get',
        '--raw',
        `/apis/metrics.k8s.io/v1beta1/namespaces/${NS}/pods?labelSelector=app.kubernetes.io/name%3Dstreamroom,app.kubernetes.io/instance%3D${room}`,
      ]);
      const items = (JSON.parse(raw) as { items: { containers: { usage: { memory: string } }[] }[] }).items;
      if (!items.length) return undefined;
      return items.map((p) => Math.round(parseKi(p.containers[0]?.usage.memory ?? '0') / 1024));
    },
    90_000,
    2000,
  );
}

function parseKi(q: string): number {
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(q);
  if (!m) return Number(q) / 1024;
  const n = Number(m[1]);
  return m[2] === 'Gi' ? n * 1024 * 1024 : m[2] === 'Mi' ? n * 1024 : m[2] === 'Ki' ? n : n / 1024;
}

/** `kubectl port-forward` to a pod or service (e.g. `pod/x`, port 8080); the local URL. */
async function forward(target: string, port: number): Promise<string> {
  const child = spawn(
    cluster.kubectlPath,
    ['port-forward', '-n', NS, target, `:${port}`, '--address', '127.0.0.1'],
    { env: { ...process.env, KUBECONFIG: cluster.kubeconfig }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  forwards.push(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`port-forward to ${target} did not start`)), 20_000);
    child.stdout?.on('data', (d: Buffer) => {
      const port = /127\.0\.0\.1:(\d+) ->/.exec(d.toString())?.[1];
      if (port) {
        clearTimeout(timer);
        resolve(`http://127.0.0.1:${port}/`);
      }
    });
    child.once('exit', (code) => reject(new Error(`port-forward to ${target} exited ${code}`)));
  });
}

/** One GET on a fresh connection (no keep-alive: each request is routed anew, as a new client's). */
function probe(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
  });
}

beforeAll(async () => {
  cluster = await startRealCluster();
  await cluster.kubectlResult(['delete', 'namespace', NS, '--wait=true', '--timeout=120s']);
  await cluster.kubectl(['create', 'namespace', NS]);
  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
  mkdirSync(ARTIFACTS, { recursive: true });
}, 3_600_000);

afterEach(async () => {
  for (const ctx of contexts.splice(0)) await ctx.close();
  for (const f of forwards.splice(0)) f.kill();
});

afterAll(async () => {
  await browser?.close();
  if (Object.keys(metrics).length) {
    writeFileSync(path.join(ARTIFACTS, 'e2e-metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
  }
  await cluster?.kubectlResult(['delete', 'namespace', NS, '--wait=false']);
  await cluster?.stop();
}, 180_000);

describe('rooms on a cluster with real containers', () => {
  it('runs the operator in the cluster from its image, installed by the Helm chart', async () => {
    const out = await cluster.kubectl([
      'get',
      'pods',
      '-n',
      'streamroom-system',
      '-l',
      'app.kubernetes.io/name=streamroom-operator',
      '-o',
      'jsonpath={range .items[*]}{.spec.containers[0].image} {.status.containerStatuses[0].ready}{"\\n"}{end}',
    ]);
    expect(out.trim().split('\n')).toEqual([expect.stringMatching(/^streamroom\/operator:\S+ true$/)]);
  });

  it('streams the basic example to a viewer through the URL in its status, with chat both ways', async () => {
    const appliedAt = Date.now();
    await kubectl(['apply', '-f', path.join(REPO_DIR, 'examples', 'basic-room.yaml')]);
    const url = await readyRoom('basic', '1/1');
    record('apply_to_ready_ms', Date.now() - appliedAt);
    expect(url).toMatch(/^http:\/\/[\d.]+:\d+\/$/);
    const key = await secretValue('basic-keys', 'broadcasterKey');
    // Browsers allow the camera on https or localhost only: a broadcaster whose room URL is another
    // address (kind's node address) broadcasts through a port-forward, as a user would.
    const local = /^http:\/\/(127\.0\.0\.1|localhost)[:/]/.test(url);
    const broadcaster = await openBroadcaster(
      browser,
      contexts,
      local ? url : await forward('svc/basic', 80),
      key,
    );
    const viewer = await openRoomPage(browser, contexts, url, 'Vera Viewer');
    await waitForFrames(viewer, 0, 60_000);
    record('apply_to_first_frame_ms', Date.now() - appliedAt);
    await expectVideoPlaying(viewer);

    await viewer.fill('#chat-input', 'hello from the viewer');
    await viewer.press('#chat-input', 'Enter');
    await broadcaster.locator('.msg-text', { hasText: 'hello from the viewer' }).waitFor();
    await broadcaster.fill('#chat-input', 'welcome to the room');
    await broadcaster.press('#chat-input', 'Enter');
    await viewer.locator('.msg-text', { hasText: 'welcome to the room' }).waitFor();
    await viewer.locator('#overlay').waitFor({ state: 'hidden' });
    await viewer.screenshot({ path: path.join(ARTIFACTS, 'e2e-viewer.png') });
    await broadcaster.screenshot({ path: path.join(ARTIFACTS, 'e2e-broadcaster.png') });
  }, 360_000);

  it('adds a replica under chat load and removes it when the load stops', async () => {
    await applyRoom('busy', {
      replicas: { min: 1, max: 2 },
      autoscaling: { targetCPUUtilizationPercentage: 50, scaleDownStabilizationWindowSeconds: 20 },
      maxViewers: 100,
      chat: { messagesPerMinute: 600 },
      expose: { type: 'NodePort' },
    });
    const url = await readyRoom('busy', '1/1');
    record('room_pod_memory_idle_mib', (await podMemoryMiB('busy'))[0]);

    // 50 chat clients, each sending 4 messages a second (every message reaches all 50).
    const clients: Socket[] = [];
    for (let i = 0; i < 50; i++) {
      const socket = ioClient(url, {
        auth: { role: 'viewer', name: `load-${i}` },
        transports: ['websocket'],
        forceNew: true,
      });
      clients.push(socket);
    }
    await eventually('50 clients connected', async () => clients.every((c) => c.connected), 30_000);
    let sent = 0;
    const loadStartedAt = Date.now();
    const timer = setInterval(() => {
      for (const c of clients) {
        c.emit('chat:send', { text: `load ${sent++}` });
      }
    }, 250);
    try {
      await sleep(20_000);
      record('room_pod_memory_50_clients_mib', (await podMemoryMiB('busy'))[0]);
      const scaledUpAt = await eventually(
        'the HPA adds a replica',
        async () =>
          (await jsonpath('deployment', 'busy', '{.spec.replicas}')) === '2' ? Date.now() : undefined,
        240_000,
        2000,
      );
      record('hpa_scale_up_seconds_after_load', Math.round((scaledUpAt - loadStartedAt) / 1000));
      await readyRoom('busy', '2/2', 120_000);
    } finally {
      clearInterval(timer);
      for (const c of clients) c.close();
    }
    const quietAt = Date.now();
    await eventually(
      'the HPA removes the replica',
      async () => (await jsonpath('deployment', 'busy', '{.spec.replicas}')) === '1',
      300_000,
      2000,
    );
    record('hpa_scale_down_seconds_after_load', Math.round((Date.now() - quietAt) / 1000));
  }, 900_000);

  it('keeps the room reachable while it rolls out a new image tag', async () => {
    const url = await readyRoom('basic', '1/1');
    const image = (await jsonpath('deployment', 'basic', '{.spec.template.spec.containers[0].image}')) ?? '';
    const next = `${image.split(':')[0]}:e2e-rollout`;
    const loaded = await runCommand(
      'bash',
      [path.join(REPO_DIR, 'e2e', 'scripts', 'cluster.sh'), 'tag', image, next],
      process.env,
    );
    if (loaded.code !== 0) throw new Error(`cluster.sh tag failed:\n${loaded.stderr}`);

    let ok = 0;
    const failures: string[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const code = await probe(`${url}healthz`);
        if (code === 200) ok++;
        else failures.push(`${new Date().toISOString()} ${code}`);
        await sleep(50);
      }
    })();
    await kubectl([
      'patch',
      'streamroom',
      'basic',
      '--type',
      'merge',
      '-p',
      JSON.stringify({ spec: { image: next } }),
    ]);
    await kubectl(['rollout', 'status', 'deployment/basic', '--timeout=180s']);
    await eventually(
      'only pods of the new image',
      async () => {
        const images = await kubectl([
          'get',
          'pods',
          '-l',
          'app.kubernetes.io/name=streamroom,app.kubernetes.io/instance=basic',
          '-o',
          'jsonpath={.items[*].spec.containers[0].image}',
        ]);
        return images.trim() === next;
      },
      90_000,
    );
    await sleep(2000);
    polling = false;
    await poller;
    record('rollout_health_probes', { ok, failed: failures.length });
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(20);
  }, 360_000);

  it('runs a room of 3 replicas as one room: video and chat cross pods', async () => {
    await applyRoom('trio', { replicas: { min: 3, max: 3 }, expose: { type: 'NodePort' } });
    await readyRoom('trio', '3/3');
    expect(
      await jsonpath('streamroom', 'trio', '{.status.conditions[?(@.type=="BackplaneReady")].status}'),
    ).toBe('True');
    const pods = (
      await kubectl([
        'get',
        'pods',
        '-l',
        'app.kubernetes.io/name=streamroom,app.kubernetes.io/instance=trio',
        '--field-selector=status.phase=Running',
        '-o',
        'jsonpath={.items[*].metadata.name}',
      ])
    )
      .trim()
      .split(' ');
    expect(pods).toHaveLength(3);
    const [a, b, c] = await Promise.all(pods.map((pod) => forward(`pod/${pod}`, 8080)));
    const key = await secretValue('trio-keys', 'broadcasterKey');
    const broadcaster = await openBroadcaster(browser, contexts, a as string, key);
    const onB = await openRoomPage(browser, contexts, b as string, 'Bea on pod B');
    const onC = await openRoomPage(browser, contexts, c as string, 'Cal on pod C');
    await waitForFrames(onB, 0, 60_000);
    await waitForFrames(onC, 0, 60_000);
    await onC.fill('#chat-input', 'from pod C');
    await onC.press('#chat-input', 'Enter');
    for (const page of [broadcaster, onB] as Page[]) {
      await page.locator('.msg-text', { hasText: 'from pod C' }).waitFor();
    }
    await onB.getByText('2 watching').waitFor();
    await onC.screenshot({ path: path.join(ARTIFACTS, 'e2e-viewer-other-pod.png') });
  }, 360_000);

  it('deletes everything a room owned when the room is deleted', async () => {
    await kubectl(['delete', 'streamroom', '--all', '--wait=true', '--timeout=120s']);
    const owned = async () =>
      (
        await kubectl([
          'get',
          'deployments,services,hpa,secrets,pods',
          '-l',
          'app.kubernetes.io/managed-by=streamroom-operator',
          '-o',
          'name',
        ])
      ).trim();
    await eventually('children gone', async () => (await owned()) === '', 180_000, 2000);
    const pods = await kubectl(['get', 'pods', '-o', 'name']);
    expect(pods.trim()).toBe('');
  }, 240_000);
});
