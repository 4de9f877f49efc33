// Hibernation on the real node (e2e/scripts/cluster.sh; the chart's operator with its waker): a room with
// idleAfterSeconds 20 goes to sleep after its last viewer leaves (no pod, no autoscaler, no Redis); a
// Chromium viewer who opens its URL sees the waking page, then the live video once the broadcaster is
// back. Request -> page and request -> first decoded frame go to test-artifacts/e2e-hibernation.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import {
  CHROMIUM_ARGS,
  CHROMIUM_PATH,
  openRoomPage,
  waitForFrames,
} from '../../room-image/test/browser-helpers.js';
import { eventually, REPO_DIR, startRealCluster, type Cluster } from '../src/cluster.js';
import { roomManifest } from '../src/operator.js';

const NS = 'e2e-sleep';
const ARTIFACTS = path.join(REPO_DIR, 'test-artifacts');
const metrics: Record<string, unknown> = {};
let cluster: Cluster;
let browser: Browser;
const contexts: BrowserContext[] = [];

const kubectl = (args: string[], input?: string) => cluster.kubectl([...args, '-n', NS], input);
const jsonpath = async (kind: string, name: string, expr: string) => {
  const r = await cluster.kubectlResult(['get', kind, name, '-n', NS, '-o', `jsonpath=${expr}`]);
  return r.code === 0 ? r.stdout : undefined;
};
const exists = async (kind: string, name: string) =>
  (await cluster.kubectlResult(['get', kind, name, '-n', NS])).code === 0;

function record(name: string, value: unknown): void {
  metrics[name] = value;
  console.log(`[e2e] ${name} = ${JSON.stringify(value)}`);
}

/** The room's pods (room server and Redis), with their memory working set (MiB) once metrics have them. */
async function roomPods(room: string): Promise<{ name: string; memoryMiB?: number }[]> {
  const names = (
    await kubectl([
      'get',
      'pods',
      '-l',
      `app.kubernetes.io/instance=${room}`,
      '-o',
      'jsonpath={.items[*].metadata.name}',
    ])
  )
    .trim()
    .split(' ')
    .filter(Boolean);
  const raw = await cluster.kubectlResult([
    'get',
    '--raw',
    `/apis/metrics.k8s.io/v1beta1/namespaces/${NS}/pods?labelSelector=app.kubernetes.io/instance%3D${room}`,
  ]);
  const usage = new Map<string, number>();
  if (raw.code === 0) {
    const items = (
      JSON.parse(raw.stdout) as {
        items: { metadata: { name: string }; containers: { usage: { memory: string } }[] }[];
      }
    ).items;
    for (const p of items) {
      const ki = p.containers.reduce((n, c) => n + Number(/^(\d+)Ki$/.exec(c.usage.memory)?.[1] ?? 0), 0);
      usage.set(p.metadata.name, Math.round(ki / 1024));
    }
  }
  return names.map((name) => ({ name, ...(usage.has(name) ? { memoryMiB: usage.get(name) } : {}) }));
}

beforeAll(async () => {
  cluster = await startRealCluster();
  await cluster.kubectlResult(['delete', 'namespace', NS, '--wait=true', '--timeout=120s']);
  await cluster.kubectl(['create', 'namespace', NS]);
  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
  mkdirSync(ARTIFACTS, { recursive: true });
}, 3_600_000);

afterAll(async () => {
  for (const ctx of contexts.splice(0)) await ctx.close();
  await browser?.close();
  if (Object.keys(metrics).length) {
    writeFileSync(path.join(ARTIFACTS, 'e2e-hibernation.json'), `${JSON.stringify(metrics, null, 2)}\n`);
  }
  await cluster?.kubectlResult(['delete', 'namespace', NS, '--wait=false']);
  await cluster?.stop();
}, 180_000);

describe('a room that hibernates on the real node', () => {
  it('sleeps 20 s after its last viewer leaves, and a viewer opening its URL wakes it to live video', async () => {
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify(
        roomManifest('nap', NS, {
          title: 'Nap room',
          expose: { type: 'NodePort' },
          replicas: { min: 1, max: 2 },
          hibernation: { idleAfterSeconds: 20 },
        }),
      ),
    );
    const url = await eventually(
      'nap Ready',
      async () => {
        const out = await jsonpath('streamroom', 'nap', '{.status.phase} {.status.url}');
        const [phase, u] = (out ?? '').split(' ');
        return phase === 'Ready' && u ? u : undefined;
      },
      300_000,
      1000,
    );
    const key = Buffer.from(
      (await jsonpath('secret', 'nap-keys', '{.data.broadcasterKey}')) ?? '',
      'base64',
    ).toString();

    // a viewer comes and goes; what the idle room holds meanwhile
    const first = await openRoomPage(browser, contexts, url, 'Early Viewer');
    await first.locator('#chat-input').waitFor();
    await eventually(
      'viewers 1 in status',
      async () => (await jsonpath('streamroom', 'nap', '{.status.viewers}')) === '1',
      60_000,
      1000,
    );
    const awake = await eventually(
      'room pods with metrics',
      async () => {
        const pods = await roomPods('nap');
        return pods.length === 2 && pods.every((p) => p.memoryMiB !== undefined) ? pods : undefined;
      },
      120_000,
      3000,
    );
    record('idle_room_before', {
      pods: awake.length,
      memoryMiB: awake.reduce((n, p) => n + (p.memoryMiB ?? 0), 0),
      hpa: await exists('hpa', 'nap'),
      redis: await exists('deployment', 'nap-redis'),
    });
    await contexts.pop()!.close();
    const leftAt = Date.now();

    await eventually(
      'nap Hibernating',
      async () => (await jsonpath('streamroom', 'nap', '{.status.phase}')) === 'Hibernating',
      120_000,
      1000,
    );
    record('last_viewer_left_to_hibernating_ms', Date.now() - leftAt);
    await eventually('no pod', async () => (await roomPods('nap')).length === 0, 120_000, 2000);
    expect(await exists('hpa', 'nap')).toBe(false);
    expect(await exists('deployment', 'nap-redis')).toBe(false);
    expect(await exists('endpointslice', 'nap-waker')).toBe(true);
    record('idle_room_after', { pods: 0, memoryMiB: 0, hpa: false, redis: false });
    const table = await kubectl(['get', 'streamroom', 'nap']);
    expect(table).toMatch(/\sHibernating\s+0\/0\s+false\s+0\s/);

    // a viewer opens the URL: the waking page first
    const requestedAt = Date.now();
    const viewer = await openRoomPage(browser, contexts, url, 'Vera Viewer');
    await viewer.locator('#waking').waitFor({ timeout: 30_000 });
    record('request_to_waking_page_ms', Date.now() - requestedAt);
    expect(await viewer.content()).not.toContain(key);

    // the broadcaster's URL (key in the fragment) gets the same waking page, then the room (the
    // reload keeps the fragment)
    const broadcaster = await openRoomPage(
      browser,
      contexts,
      `${url.replace(/\/$/, '')}/#key=${encodeURIComponent(key)}`,
    );
    await broadcaster.getByRole('button', { name: 'Start camera' }).click({ timeout: 240_000 });
    await broadcaster.getByRole('button', { name: 'Stop camera' }).waitFor();
    record('request_to_broadcaster_on_air_ms', Date.now() - requestedAt);
    await viewer.locator('#chat-input').waitFor({ timeout: 60_000 });
    record('request_to_room_page_ms', Date.now() - requestedAt);
    // the viewer's page moved on to the room by itself and shows the video
    await waitForFrames(viewer, 0, 120_000);
    record('request_to_first_frame_ms', Date.now() - requestedAt);
    expect(await viewer.locator('#waking').count()).toBe(0);
    expect(await jsonpath('streamroom', 'nap', '{.status.phase}')).toBe('Ready');
    await eventually(
      'waker slice gone',
      async () => !(await exists('endpointslice', 'nap-waker')),
      60_000,
      1000,
    );
    expect(await jsonpath('streamroom', 'nap', '{.status.hibernatedAt}')).toBe('');
  }, 900_000);
});
