// Images into the real node's containerd (namespace k8s.io, where the kubelet finds them), so pods
// can use them with imagePullPolicy IfNotPresent (nothing can be pulled here). An image containerd
// already has with the same image ID (config digest) is skipped, so repeated loads are fast.
import { spawn } from 'node:child_process';
import { createReadStream, existsSync } from 'node:fs';
import path from 'node:path';
import { nodeImageTar, toolPath } from './artifacts.js';
import { clusterPaths } from './config.js';
import { check, runCommand } from './exec.js';
import { loadNodeState } from './node.js';
import * as containerd from './components/containerd.js';

/**
 * The fully qualified name containerd stores (docker's normalisation): streamroom/room:0.1.0 ->
 * docker.io/streamroom/room:0.1.0, debian:bookworm-slim -> docker.io/library/debian:bookworm-slim.
 */
export function normalizeImage(ref: string): string {
  if (ref.includes('@')) return ref;
  let full = ref;
  const first = ref.split('/')[0] ?? '';
  if (!ref.includes('/')) full = `docker.io/library/${ref}`;
  else if (!first.includes('.') && !first.includes(':') && first !== 'localhost') full = `docker.io/${ref}`;
  const last = full.slice(full.lastIndexOf('/') + 1);
  return last.includes(':') ? full : `${full}:latest`;
}

/** [image ID, tag] per RepoTag of a docker-archive's manifest.json. */
export function archiveTags(manifestJson: string): [string, string][] {
  const manifest = JSON.parse(manifestJson) as { Config?: string; RepoTags?: string[] | null }[];
  return manifest.flatMap((m) => {
    const digest = path.basename(m.Config ?? '').replace(/\.json$/, '');
    return (m.RepoTags ?? []).map((tag): [string, string] => [`sha256:${digest}`, tag]);
  });
}

/** Where the node of a cluster's state dir is. */
function nodeOf(dir: string) {
  const state = loadNodeState(dir);
  if (!state) throw new Error(`no real node in ${dir} (start the cluster with: cli.ts up --real-node)`);
  return { sock: containerd.socket(state.node) };
}

const DOCKER = () => (existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker');

/**
 * Loads images into the real node of the cluster in `dir`: docker image names (one `docker save`
 * stream for all, shared layers once), docker-archive/OCI tar files, or our own `pause` and
 * `nettest`. Reports each on `log`.
 */
export async function loadImages(dir: string, refs: string[], log: (m: string) => void): Promise<void> {
  const { sock } = nodeOf(dir);
  const crictl = toolPath('crictl');
  const loadedId = async (ref: string) => {
    const r = await runCommand(crictl, [
      '--runtime-endpoint',
      `unix://${sock}`,
      'inspecti',
      '-o',
      'go-template',
      '--template',
      '{{.status.id}}',
      ref,
    ]);
    return r.code === 0 ? r.stdout.trim() : '';
  };
  const ctrImport = (input: NodeJS.ReadableStream) =>
    new Promise<void>((resolve, reject) => {
      const ctr = spawn('ctr', ['--address', sock, '--namespace', 'k8s.io', 'images', 'import', '-'], {
        stdio: ['pipe', 'ignore', 'pipe'],
      });
      let stderr = '';
      ctr.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      ctr.on('error', reject);
      ctr.on('exit', (code) =>
        code === 0 ? resolve() : reject(new Error(`ctr images import: ${stderr.trim()}`)),
      );
      input.on('error', reject);
      input.pipe(ctr.stdin);
    });
  const t0 = Date.now();
  const fromDocker: string[] = [];
  for (const given of refs) {
    const ref = given === 'pause' || given === 'nettest' ? await nodeImageTar(given) : given;
    if (existsSync(ref)) {
      const manifest = await runCommand('tar', ['-xOf', ref, 'manifest.json']);
      const tags = manifest.code === 0 ? archiveTags(manifest.stdout) : [];
      let need = tags.length === 0;
      for (const [id, tag] of tags) if ((await loadedId(normalizeImage(tag))) !== id) need = true;
      if (need) {
        await ctrImport(createReadStream(ref));
        log(`imported ${ref} (${tags.map((t) => t[1]).join(' ') || 'OCI archive'})`);
      } else {
        log(`up to date: ${tags.map((t) => t[1]).join(' ')} (${tags[0]?.[0].slice(7, 19)})`);
      }
      continue;
    }
    const inspect = await runCommand(DOCKER(), ['image', 'inspect', '-f', '{{.Id}}', ref]);
    if (inspect.code !== 0)
      throw new Error(`${ref}: no such image in docker (docker image ls) and not a file`);
    const id = inspect.stdout.trim();
    if ((await loadedId(normalizeImage(ref))) === id)
      log(`up to date: ${normalizeImage(ref)} (${id.slice(7, 19)})`);
    else fromDocker.push(ref);
  }
  if (fromDocker.length) {
    const save = spawn(DOCKER(), ['save', ...fromDocker], { stdio: ['ignore', 'pipe', 'inherit'] });
    const saved = new Promise<void>((resolve, reject) =>
      save.on('exit', (code) =>
        code === 0 ? resolve() : reject(new Error(`docker save exited with ${code}`)),
      ),
    );
    await Promise.all([ctrImport(save.stdout), saved]);
    for (const ref of fromDocker) {
      const full = normalizeImage(ref);
      if (!(await loadedId(full))) throw new Error(`${ref} was imported but containerd has no ${full}`);
      log(`imported ${full} from docker`);
    }
  }
  log(`images loaded in ${Date.now() - t0} ms`);
}

/** Tags a docker image and loads it under the new name into the local cluster's node. */
export async function tagImage(
  dir: string,
  from: string,
  to: string,
  log: (m: string) => void,
): Promise<void> {
  await check(DOCKER(), ['tag', from, to]);
  await loadImages(clusterPaths(dir).dir, [to], log);
}
