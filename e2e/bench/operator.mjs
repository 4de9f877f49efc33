// npm run bench:operator: the operator (as a process, built) against the local cluster of e2e/cluster
// with kwok nodes. Prints: cluster start time, time from applying one room to Ready, time for 100
// rooms applied at once to all be Ready, and the operator's API writes and memory. Every wait is bounded.
/* global setTimeout, clearTimeout */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ROOMS = Number(process.env.BENCH_ROOMS ?? 100);
const dir = mkdtempSync(path.join(os.tmpdir(), 'streamroom-bench-'));
const env = { ...process.env, STREAMROOM_CLUSTER_DIR: dir, KUBECONFIG: path.join(dir, 'kubeconfig') };
const rssMiB = (pid) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;
// The kubectl built with the cluster (same version as the API server).
const KUBECTL = (
  await run('bash', ['-c', `source "${REPO}/e2e/cluster/lib.sh" && tool_bin kubectl`])
).stdout.trim();
const kubectl = async (args, input) => {
  const child = run(KUBECTL, args, { env, maxBuffer: 64 << 20 });
  if (input !== undefined) child.child.stdin.end(input);
  return (await child).stdout;
};
const room = (name) => ({
  apiVersion: 'streamroom.dev/v1alpha1',
  kind: 'StreamRoom',
  metadata: { name, namespace: 'bench' },
  spec: { title: name, image: 'streamroom/room:bench' },
});

async function readyCount() {
  const list = JSON.parse(await kubectl(['get', 'streamrooms', '-n', 'bench', '-o', 'json']));
  return list.items.filter((r) => r.status?.phase === 'Ready').length;
}

async function waitReady(count, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ready = await readyCount();
    if (ready >= count) return;
    if (Date.now() > deadline)
      throw new Error(`only ${ready} of ${count} rooms Ready after ${seconds(timeoutMs)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

let operator;
try {
  let t0 = Date.now();
  await run('bash', [path.join(REPO, 'e2e/cluster/up.sh'), '--owner-pid', String(process.pid)], { env });
  console.log(
    `cluster up (etcd, apiserver, controller-manager, scheduler, kwok, metrics-server): ${seconds(Date.now() - t0)}`,
  );
  await kubectl(['apply', '-f', path.join(REPO, 'crds')]);
  await kubectl(['wait', '--for=condition=Established', 'crd/streamrooms.streamroom.dev', '--timeout=60s']);
  await kubectl(['create', 'namespace', 'bench']);
  await kubectl(['wait', '--for=condition=Ready', 'nodes', '--all', '--timeout=60s']);
  operator = spawn(
    process.execPath,
    [path.join(REPO, 'operator/dist/main.js'), '--health-address', '127.0.0.1:0'],
    {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('the operator did not start within 60 s')), 60_000);
    const onData = (d) => {
      out += d;
      if (!out.includes('"msg":"operator started"')) return;
      clearTimeout(timer);
      operator.stdout.off('data', onData);
      operator.stdout.resume(); // keep draining its logs
      resolve();
    };
    operator.stdout.on('data', onData);
  });
  console.log(`operator RSS at start, no rooms: ${rssMiB(operator.pid).toFixed(1)} MiB`);

  t0 = Date.now();
  await kubectl(['apply', '-f', '-'], JSON.stringify(room('one')));
  await waitReady(1, 120_000);
  console.log(`one room, kubectl apply -> Ready: ${seconds(Date.now() - t0)}`);

  const list = {
    apiVersion: 'v1',
    kind: 'List',
    items: Array.from({ length: ROOMS }, (_, i) => room(`room-${i}`)),
  };
  t0 = Date.now();
  await kubectl(['apply', '-f', '-'], JSON.stringify(list));
  const applied = Date.now() - t0;
  await waitReady(ROOMS + 1, 600_000);
  console.log(
    `${ROOMS} rooms applied at once (apply took ${seconds(applied)}) -> all Ready: ${seconds(Date.now() - t0)}`,
  );
  console.log(`operator RSS with ${ROOMS + 1} rooms: ${rssMiB(operator.pid).toFixed(1)} MiB`);
} finally {
  operator?.kill('SIGTERM');
  await run('bash', [path.join(REPO, 'e2e/cluster/down.sh')], { env }).catch(() => undefined);
}
