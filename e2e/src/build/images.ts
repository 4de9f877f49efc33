// The StreamRoom images, built on a machine that cannot pull from a container registry:
//   1. a Docker engine: starts dockerd (installs Debian's docker.io first when root and missing);
//   2. the base images the Dockerfiles name, each made only when missing:
//      debian:bookworm-slim: a debootstrap minbase rootfs, slimmed like the official image,
//        `docker import`ed (the rootfs tarball is cached in $STREAMROOM_CACHE/images/);
//      node:20-bookworm-slim: that plus the host's node and npm (e2e/images/node/);
//      golang:<host Go's minor>-bookworm: that plus the host's GOROOT (e2e/images/go/);
//   3. the room and operator images from room-image/Dockerfile and operator/Dockerfile, unchanged;
//   4. streamroom/redis:7 from e2e/images/redis/Dockerfile (Debian's redis-server);
//   and, without docker, the tiny images of e2e/cluster/node (pause: the pod sandbox; nettest) as
//   docker-archive tars packed by hand from a static Go binary, for `ctr images import`.
// `docker save` tarballs of the built images load them into another runtime (containerd, kind).
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { check, runCommand, runVisible } from '../cluster/exec.js';
import { findExecutable, isExecutable, needPackages, since, stderrLog, type Log } from './progress.js';
import { cacheDir, E2E_DIR } from './tools.js';

export const REPO_DIR = path.resolve(E2E_DIR, '..');
export const IMAGES_DIR = path.join(E2E_DIR, 'images');
/** The Go programs of the tiny images (pause, nettest) and their go.mod. */
export const NODE_IMAGES_DIR = path.join(E2E_DIR, 'cluster', 'node');

export const SUITE = 'bookworm';
/** Bump when the way the rootfs is made changes (the cache key also covers e2e/images/debian/). */
export const ROOTFS_REV = 1;
/** Bump when the way the tiny images are packed changes (their cache key covers their sources). */
export const ARCHIVE_REV = 1;
export const NODE_MAJOR = 20;
const LABEL_KEY = 'dev.streamroom.local-base';
const MADE_BY = 'e2e/src/build/images.ts';

/** The base images the Dockerfiles name (FROM): fixed, since the point is to satisfy those FROMs. */
export const DEBIAN_IMAGE = 'debian:bookworm-slim';
export const NODE_IMAGE = 'node:20-bookworm-slim';

// ---- what to build --------------------------------------------------------------------------

export const TARGETS = ['base', 'room', 'operator', 'redis', 'pause', 'nettest'] as const;
export type Target = (typeof TARGETS)[number];
/** `images` without --only (pause and nettest are made by the cluster when it needs them). */
export const DEFAULT_TARGETS: readonly Target[] = ['base', 'room', 'operator', 'redis'];

/** --only values (comma-separated, repeatable) -> targets; none -> DEFAULT_TARGETS. */
export function parseTargets(values: readonly string[]): Target[] {
  const names = values.flatMap((v) => v.split(',')).filter(Boolean);
  const unknown = names.filter((n) => !(TARGETS as readonly string[]).includes(n));
  if (unknown.length)
    throw new Error(`--only: unknown target '${unknown.join("', '")}' (known: ${TARGETS.join(' ')})`);
  return names.length ? [...new Set(names as Target[])] : [...DEFAULT_TARGETS];
}

export type ArchiveName = 'pause' | 'nettest';

/** Which steps a set of targets needs: the base images under the app images, docker only for those. */
export interface ImagePlan {
  debian: boolean;
  node: boolean;
  go: boolean;
  room: boolean;
  operator: boolean;
  redis: boolean;
  /** docker-archive tars, no docker needed. */
  archives: ArchiveName[];
  /** A Docker engine is needed. */
  docker: boolean;
}

export function planImages(targets: readonly Target[]): ImagePlan {
  const has = (t: Target) => targets.includes(t);
  const node = has('base') || has('room') || has('operator');
  const plan = {
    node,
    debian: node || has('redis'),
    go: has('room'),
    room: has('room'),
    operator: has('operator'),
    redis: has('redis'),
    archives: (['pause', 'nettest'] as const).filter(has),
  };
  return { ...plan, docker: plan.debian };
}

/** The images of the table printed after a build, in the order the bash script printed them. */
export function shownImages(plan: ImagePlan, names: ImageNames, goImage?: string): string[] {
  const shown: string[] = [];
  if (plan.node) shown.push(DEBIAN_IMAGE, NODE_IMAGE);
  if (plan.go && goImage) shown.push(goImage);
  if (plan.redis && !plan.node) shown.push(DEBIAN_IMAGE);
  return [...shown, ...builtImages(plan, names)];
}

/** The app images a plan builds (what --save writes). */
export function builtImages(plan: ImagePlan, names: ImageNames): string[] {
  return [
    ...(plan.room ? [names.room] : []),
    ...(plan.operator ? [names.operator] : []),
    ...(plan.redis ? [names.redis] : []),
  ];
}

// ---- image names ----------------------------------------------------------------------------

export interface ImageNames {
  room: string;
  operator: string;
  redis: string;
}

const REF = /^[a-z0-9./_-]+:[A-Za-z0-9._-]+$/;

/** DEFAULT_ROOM_IMAGE in operator/src/config.ts (the operator's --default-image). */
export function parseDefaultRoomImage(configTs: string): string | undefined {
  const v = /^export const DEFAULT_ROOM_IMAGE = '([^']*)';/m.exec(configTs)?.[1];
  return v && REF.test(v) ? v : undefined;
}

/** The chart's image.repository : appVersion (values.yaml image.tag is empty, meaning appVersion). */
export function parseOperatorImage(valuesYaml: string, chartYaml: string): string | undefined {
  try {
    const repo: unknown = (parse(valuesYaml) as { image?: { repository?: unknown } } | null)?.image
      ?.repository;
    const tag: unknown = (parse(chartYaml) as { appVersion?: unknown } | null)?.appVersion;
    const ref = `${String(repo)}:${String(tag)}`;
    return typeof repo === 'string' && typeof tag === 'string' && REF.test(ref) ? ref : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The names of the images built here: the ones the operator and the chart ask for, unless
 * STREAMROOM_ROOM_IMAGE, STREAMROOM_OPERATOR_IMAGE, STREAMROOM_REDIS_IMAGE say otherwise.
 */
export function imageNames(env: NodeJS.ProcessEnv = process.env, log: Log = stderrLog): ImageNames {
  const read = (file: string) => {
    try {
      return readFileSync(path.join(REPO_DIR, file), 'utf8');
    } catch {
      return '';
    }
  };
  const room =
    env.STREAMROOM_ROOM_IMAGE ||
    parseDefaultRoomImage(read('operator/src/config.ts')) ||
    fallback('no DEFAULT_ROOM_IMAGE in operator/src/config.ts', 'streamroom/room:0.1.0', log);
  const chart = 'charts/streamroom-operator';
  const operator =
    env.STREAMROOM_OPERATOR_IMAGE ||
    parseOperatorImage(read(`${chart}/values.yaml`), read(`${chart}/Chart.yaml`)) ||
    fallback(`cannot read image.repository / appVersion from ${chart}`, 'streamroom/operator:0.1.0', log);
  return { room, operator, redis: env.STREAMROOM_REDIS_IMAGE || 'streamroom/redis:7' };
}

function fallback(problem: string, value: string, log: Log): string {
  log(`[images] warning: ${problem}; using ${value}`);
  return value;
}

/** The official Go image of the host Go's minor version: go1.26.8 -> golang:1.26-bookworm. */
export function goImageTag(goVersion: string): string {
  const [major, minor] = goVersion.replace(/^go/, '').split('.');
  return `golang:${major}.${minor}-${SUITE}`;
}

// ---- pure parts of the builds ---------------------------------------------------------------

/** A file of a cache key's inputs: its name as `find .` prints it, and its bytes. */
export interface KeyFile {
  name: string;
  content: Buffer;
}

/** The files under a directory, named `./a/b` and sorted as `find . -type f | LC_ALL=C sort`. */
export function keyFiles(dir: string): KeyFile[] {
  const out: KeyFile[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = `${rel}/${e.name}`;
      if (e.isDirectory()) walk(r);
      else if (e.isFile()) out.push({ name: r, content: readFileSync(path.join(dir, r)) });
    }
  };
  walk('.');
  return out.sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
}

export interface RootfsInputs {
  arch: string;
  mirror: string;
  securityMirror: string;
  /** keyFiles(e2e/images/debian) */
  files: KeyFile[];
}

/**
 * The cache key of the slimmed rootfs tarball (12 hex digits): the same bytes the bash script
 * hashed, so a rootfs it cached is still used.
 */
export function rootfsKey(i: RootfsInputs): string {
  const h = createHash('sha256');
  h.update([ROOTFS_REV, SUITE, i.arch, i.mirror, i.securityMirror].map((l) => `${l}\n`).join(''));
  for (const f of i.files) h.update(`${f.name}\n`).update(f.content);
  return h.digest('hex').slice(0, 12);
}

/** The apt sources of the image: bookworm, -updates and -security, as in the official image. */
export function debianSources(mirror: string, securityMirror: string): string {
  return `Types: deb
URIs: ${mirror}
Suites: ${SUITE} ${SUITE}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${securityMirror}
Suites: ${SUITE}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`;
}

/**
 * The commands that make a debootstrap minbase tree look like the official debian:*-slim image: no
 * apt lists or downloaded .debs; no docs (but copyrights), man pages, info pages or translations
 * (e2e/images/debian/overlay has the dpkg/apt config that keeps it so); no logs or host files left by
 * debootstrap. (find and rm, which never follow the rootfs's absolute symlinks out of it.)
 */
export function slimCommands(r: string): string[][] {
  return [
    ['rm', '-rf', `${r}/var/lib/apt/lists`, `${r}/var/log/apt`, `${r}/etc/apt/sources.list`],
    ['mkdir', '-p', `${r}/var/lib/apt/lists/partial`, `${r}/var/log/apt`],
    ['find', `${r}/var/cache/apt`, '-type', 'f', '-delete'],
    ['find', `${r}/usr/share/doc`, '-mindepth', '1', '!', '-type', 'd', '!', '-name', 'copyright', '-delete'],
    ['find', `${r}/usr/share/doc`, '-mindepth', '1', '-depth', '-type', 'd', '-empty', '-delete'],
    ...['man', 'info', 'groff', 'linda', 'lintian/overrides', 'locale'].map((d) => [
      'find',
      `${r}/usr/share/${d}`,
      '-mindepth',
      '1',
      '-delete',
    ]),
    [
      'rm',
      '-f',
      `${r}/var/log/bootstrap.log`,
      `${r}/var/log/dpkg.log`,
      `${r}/var/log/alternatives.log`,
      `${r}/var/cache/debconf/templates.dat-old`,
      `${r}/var/cache/debconf/config.dat-old`,
      `${r}/var/lib/dpkg/status-old`,
      `${r}/var/lib/dpkg/diversions-old`,
    ],
    ['find', `${r}/tmp`, `${r}/var/tmp`, '-mindepth', '1', '-delete'],
  ];
}

/** `docker build` arguments of an app image (room, operator) from the repository root. */
export function appBuildArgs(
  repoDir: string,
  dockerfile: string,
  tag: string,
  extra: readonly string[],
  caFile?: string,
): string[] {
  return [
    'build',
    '-f',
    path.join(repoDir, dockerfile),
    '-t',
    tag,
    ...extra,
    // npm ci / go mod download through a TLS-intercepting proxy: its CA as an optional BuildKit secret
    ...(caFile ? ['--secret', `id=extra_ca,src=${caFile}`] : []),
    repoDir,
  ];
}

/** The `docker save` tarball of an image: streamroom/room:0.1.0 -> <dir>/streamroom_room_0.1.0.tar */
export const saveFile = (dir: string, image: string): string =>
  path.join(dir, `${image.replace(/[/:@]/g, '_')}.tar`);

/** The table printed after a build (image, ID, size). */
export function formatTable(rows: readonly { name: string; id: string; size: string }[]): string {
  const line = (a: string, b: string, c: string) => `${a.padEnd(36)} ${b.padEnd(14)} ${c}`.trimEnd();
  return [line('IMAGE', 'ID', 'SIZE'), ...rows.map((r) => line(r.name, r.id, r.size))].join('\n');
}

// ---- the tiny images (docker-archive tars) --------------------------------------------------

export const ARCHIVES: Record<ArchiveName, { ref: string; entrypoint: string[]; cmd: string[] | null }> = {
  pause: { ref: 'streamroom/pause:3.10', entrypoint: ['/pause'], cmd: null },
  nettest: { ref: 'streamroom/nettest:0.1.0', entrypoint: ['/nettest'], cmd: ['serve'] },
};

/** The cache key of a tiny image: its Go sources, go.mod, the Go version and ARCHIVE_REV. */
export function archiveKey(files: readonly KeyFile[], goVersion: string): string {
  const h = createHash('sha256').update(`${ARCHIVE_REV}\n${goVersion}\n`);
  for (const f of files) h.update(`${f.name}\n`).update(f.content);
  return h.digest('hex').slice(0, 12);
}

const goArch = (arch: string = process.arch) => ({ x64: 'amd64', arm64: 'arm64' })[arch] ?? arch;

/** The image config of a tiny image: fixed times, so the same binary gives the same image ID. */
export function archiveConfig(name: ArchiveName, layerSha: string, arch = goArch()): string {
  const a = ARCHIVES[name];
  return JSON.stringify({
    architecture: arch,
    os: 'linux',
    created: '1970-01-01T00:00:00Z',
    config: { Env: ['PATH=/'], Entrypoint: a.entrypoint, Cmd: a.cmd, WorkingDir: '/' },
    rootfs: { type: 'layers', diff_ids: [`sha256:${layerSha}`] },
    history: [{ created: '1970-01-01T00:00:00Z', created_by: `${MADE_BY} ${name}` }],
  });
}

/** manifest.json of a docker-archive with one image of one layer. */
export function archiveManifest(name: ArchiveName, configSha: string, layerSha: string): string {
  return JSON.stringify([
    { Config: `${configSha}.json`, RepoTags: [ARCHIVES[name].ref], Layers: [`${layerSha}/layer.tar`] },
  ]);
}

const sha256File = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const tarRepro = ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '--format=ustar'];

export interface ArchiveOptions {
  env?: NodeJS.ProcessEnv;
  log?: Log;
}

/**
 * A tiny image as a docker-archive tar (manifest.json + config + one layer with the static binary),
 * which `ctr images import` or `docker load` reads; cached in <cache>/images/<name>-<key>.tar.
 * Reproducible (fixed times and owners, a -trimpath build). Resolves with the tar's path.
 */
export async function buildArchive(name: ArchiveName, options: ArchiveOptions = {}): Promise<string> {
  const env = options.env ?? process.env;
  const log = options.log ?? stderrLog;
  if (!(name in ARCHIVES))
    throw new Error(`unknown image '${name}' (known: ${Object.keys(ARCHIVES).join(' ')})`);
  let goVersion: string;
  try {
    goVersion = (await check('go', ['env', 'GOVERSION'], { env })).trim();
  } catch (cause) {
    throw new Error(`the ${name} image is a Go program: install Go 1.24 or newer (https://go.dev/dl)`, {
      cause,
    });
  }
  const src = path.join(NODE_IMAGES_DIR, name);
  const files = [
    { name: './go.mod', content: readFileSync(path.join(NODE_IMAGES_DIR, 'go.mod')) },
    ...keyFiles(src).filter((f) => f.name.endsWith('.go')),
  ];
  const outDir = path.join(cacheDir(env), 'images');
  const out = path.join(outDir, `${name}-${archiveKey(files, goVersion)}.tar`);
  if (existsSync(out) && statSync(out).size > 0) return out;

  const started = Date.now();
  mkdirSync(outDir, { recursive: true });
  const work = mkdtempSync(path.join(outDir, `.build-${name}.`));
  try {
    mkdirSync(path.join(work, 'rootfs'));
    mkdirSync(path.join(work, 'image'));
    await check('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', path.join(work, 'rootfs', name), '.'], {
      cwd: src,
      env: { ...env, CGO_ENABLED: '0', GOFLAGS: '-mod=readonly -buildvcs=false' },
    });
    chmodSync(path.join(work, 'rootfs', name), 0o755);
    const layer = path.join(work, 'layer.tar');
    await check('tar', [...tarRepro, '-C', path.join(work, 'rootfs'), '-cf', layer, name]);
    const layerSha = sha256File(layer);
    mkdirSync(path.join(work, 'image', layerSha));
    renameSync(layer, path.join(work, 'image', layerSha, 'layer.tar'));
    const config = archiveConfig(name, layerSha);
    const configSha = createHash('sha256').update(config).digest('hex');
    writeFileSync(path.join(work, 'image', `${configSha}.json`), config);
    writeFileSync(path.join(work, 'image', 'manifest.json'), archiveManifest(name, configSha, layerSha));
    const tar = path.join(work, 'image.tar');
    await check('tar', [
      ...tarRepro,
      '-C',
      path.join(work, 'image'),
      '-cf',
      tar,
      'manifest.json',
      `${configSha}.json`,
      layerSha,
    ]);
    renameSync(tar, out);
  } catch (cause) {
    throw new Error(`building the ${ARCHIVES[name].ref} image from ${path.relative(REPO_DIR, src)}`, {
      cause,
    });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  for (const f of readdirSync(outDir)) {
    // older builds of the same image
    if (f.startsWith(`${name}-`) && f.endsWith('.tar') && path.join(outDir, f) !== out) {
      rmSync(path.join(outDir, f), { force: true });
    }
  }
  log(`[images] ${ARCHIVES[name].ref}: built in ${since(started)} -> ${out}`);
  return out;
}

/** The image ID (config digest) of a docker-archive tar made by buildArchive. */
export function archiveImageId(tar: string): string {
  const manifest = execFileSync('tar', ['-xOf', tar, 'manifest.json'], { encoding: 'utf8' });
  const config = (JSON.parse(manifest) as { Config: string }[])[0]?.Config ?? '';
  return `sha256:${config.replace(/\.json$/, '')}`;
}

// ---- docker -----------------------------------------------------------------------------------

/**
 * The docker client: STREAMROOM_DOCKER, else Debian's /usr/bin/docker (20.10, BuildKit built in; a
 * newer client first on PATH may need the buildx plugin for DOCKER_BUILDKIT=1), else docker on PATH.
 */
export function pickDocker(
  env: NodeJS.ProcessEnv = process.env,
  executable: (file: string) => boolean = isExecutable,
): string | undefined {
  if (env.STREAMROOM_DOCKER) return env.STREAMROOM_DOCKER;
  if (executable('/usr/bin/docker')) return '/usr/bin/docker';
  return findExecutable('docker', env);
}

/** The docker client, with the calls the builds make. */
export class Docker {
  constructor(
    readonly bin: string,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  /** `docker info` answers (the engine runs and this user may use it). */
  async ok(): Promise<boolean> {
    return (await runCommand(this.bin, ['info'], { env: this.env, timeoutMs: 20_000 })).code === 0;
  }

  /** The image ID of a local image, or '' when there is none. */
  async id(ref: string): Promise<string> {
    const r = await runCommand(this.bin, ['image', 'inspect', '--format', '{{.Id}}', ref], { env: this.env });
    return r.code === 0 ? r.stdout.trim() : '';
  }

  /** DOCKER_BUILDKIT=1: the Dockerfiles use RUN --mount (secret, cache) and <Dockerfile>.dockerignore. */
  build(args: readonly string[]): Promise<void> {
    return runVisible(this.bin, [...args], { env: { ...this.env, DOCKER_BUILDKIT: '1' } });
  }

  run(args: readonly string[]): Promise<string> {
    return check(this.bin, [...args], { env: this.env });
  }

  /** name:tag, short ID and size of a local image, as `docker image ls` shows them. */
  async row(ref: string): Promise<{ name: string; id: string; size: string } | undefined> {
    const r = await runCommand(
      this.bin,
      ['image', 'ls', '--format', '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}', ref],
      {
        env: this.env,
      },
    );
    const [name = '', id = '', size = ''] = r.stdout.trim().split('\n')[0]?.split(' ') ?? [];
    return r.code === 0 && name ? { name, id, size } : undefined;
  }
}

export interface EngineOptions {
  env?: NodeJS.ProcessEnv;
  log?: Log;
}

/**
 * A docker client whose engine answers: starts dockerd when it does not (in its own session, log and
 * pid file in <cache>/docker/, up to STREAMROOM_DOCKERD_TIMEOUT s, 60 by default); as root first
 * installs Debian's docker.io when there is no docker or dockerd.
 */
export async function ensureEngine(options: EngineOptions = {}): Promise<Docker> {
  const env = options.env ?? process.env;
  const log = options.log ?? stderrLog;
  let bin = pickDocker(env);
  if (bin && (await new Docker(bin, env).ok())) return new Docker(bin, env);
  let dockerd = findDockerd(env);
  if (!bin || !dockerd) {
    if (!(await needPackages(REPO_DIR, ['@IMAGE_PACKAGES']))) throw new Error('no Docker engine (see above)');
    bin = pickDocker(env);
    dockerd = findDockerd(env);
    if (!bin || !dockerd) throw new Error('docker.io is installed but there is no docker or dockerd');
    if (await new Docker(bin, env).ok()) return new Docker(bin, env);
  }
  const docker = new Docker(bin, env);
  if (process.getuid?.() !== 0) {
    if (existsSync('/var/run/docker.sock')) {
      throw new Error(
        `'${bin} info' fails: dockerd runs but ${os.userInfo().username} may not use /var/run/docker.sock (run as root or join the docker group)`,
      );
    }
    throw new Error(
      'dockerd is not running: start it as root (setsid dockerd >/tmp/dockerd.log 2>&1 &) and rerun',
    );
  }
  const dir = path.join(cacheDir(env), 'docker');
  mkdirSync(dir, { recursive: true });
  const pidFile = path.join(dir, 'dockerd.pid');
  const logFile = path.join(dir, 'dockerd.log');
  const started = Date.now();
  let pid = readDockerdPid(pidFile);
  if (pid) {
    log(`[images] dockerd (pid ${pid}, started earlier by the images build) is not answering yet; waiting`);
  } else {
    log(`[images] starting dockerd (log: ${logFile})`);
    const out = openSync(logFile, 'w');
    // detached: a session of its own (setsid), so dockerd outlives this process and its terminal
    const child = spawn(dockerd, [], { detached: true, stdio: ['ignore', out, out] });
    child.unref();
    closeSync(out);
    pid = child.pid ?? 0;
    writeFileSync(pidFile, `${pid}\n`);
  }
  const timeoutS = Number(env.STREAMROOM_DOCKERD_TIMEOUT || 60);
  while (!(await docker.ok())) {
    if (!alive(pid)) throw new Error(`dockerd exited; see ${logFile}:\n${tail(logFile, 20)}`);
    if (Date.now() - started >= timeoutS * 1000) {
      throw new Error(`dockerd did not answer within ${timeoutS}s; see ${logFile}:\n${tail(logFile, 20)}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  log(`[images] dockerd is up (pid ${pid}, ${since(started)})`);
  return docker;
}

function findDockerd(env: NodeJS.ProcessEnv): string | undefined {
  return findExecutable('dockerd', env) ?? ['/usr/sbin/dockerd', '/usr/bin/dockerd'].find(isExecutable);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The pid in the pid file, when that process still runs and is a dockerd. */
function readDockerdPid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return undefined;
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'dockerd' ? pid : undefined;
  } catch {
    return undefined;
  }
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

// ---- one build at a time per cache ------------------------------------------------------------

/**
 * Takes the exclusive flock(1) lock on `file` (the lock the bash build took, so old and new builds
 * exclude each other), waiting when another build holds it. The lock is held by a `flock ... cat`
 * child that ends when release() closes its stdin, or when this process dies.
 */
export async function acquireLock(file: string, log: Log = stderrLog): Promise<() => void> {
  mkdirSync(path.dirname(file), { recursive: true });
  const take = (wait: boolean) =>
    new Promise<(() => void) | undefined>((resolve, reject) => {
      const child = spawn(
        'flock',
        [...(wait ? [] : ['-n', '-E', '75']), file, '-c', 'echo locked; exec cat'],
        {
          stdio: ['pipe', 'pipe', 'inherit'],
        },
      );
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('locked')) resolve(() => child.stdin.end());
      });
      child.once('error', (cause) =>
        reject(new Error('cannot run flock (util-linux) to take the images build lock', { cause })),
      );
      child.once('exit', (code) => {
        if (code === 75) resolve(undefined);
        else if (!out.includes('locked')) reject(new Error(`flock ${file} exited ${code}`));
      });
    });
  const release = await take(false);
  if (release) return release;
  log(`[images] waiting for another images build to finish (lock: ${file})`);
  const later = await take(true);
  if (!later) throw new Error(`could not take the lock ${file}`);
  return later;
}

// ---- temp dirs ----------------------------------------------------------------------------------

/** Temp dirs of a build, removed at its end (and at exit: a failed debootstrap can leave mounts). */
class Scratch {
  private readonly dirs: string[] = [];

  make(): string {
    const d = mkdtempSync(path.join(process.env.TMPDIR || os.tmpdir(), 'streamroom-images.'));
    this.dirs.push(d);
    return d;
  }

  readonly cleanup = (): void => {
    for (const d of this.dirs.splice(0)) {
      if (!existsSync(d)) continue;
      // proc/sys mounted inside a rootfs by debootstrap: unmount before removing
      const mounts = readFileSync('/proc/mounts', 'utf8')
        .split('\n')
        .map((l) => l.split(' ')[1] ?? '')
        .filter((m) => m.startsWith(`${d}/`))
        .sort()
        .reverse();
      for (const m of mounts) {
        try {
          execFileSync('umount', ['-l', m], { stdio: 'ignore' });
        } catch {
          // (best effort: rm --one-file-system below leaves a mount alone)
        }
      }
      try {
        execFileSync('rm', ['-rf', '--one-file-system', d], { stdio: 'ignore' });
      } catch {
        stderrLog(`[images] warning: could not remove ${d}`);
      }
    }
  };
}

// ---- the builds -----------------------------------------------------------------------------------

export interface BuildImagesOptions {
  /** What to build (default DEFAULT_TARGETS). */
  only?: readonly Target[];
  /** Re-create the base images even if present. */
  rebuildBase?: boolean;
  /** As rebuildBase, and run debootstrap again instead of using the cached rootfs. */
  refreshRootfs?: boolean;
  /** Afterwards `docker save` the built room/operator/redis images to this directory. */
  saveDir?: string;
  /** STREAMROOM_* settings, NODE_EXTRA_CA_CERTS (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** Progress lines (default: stderr). */
  log?: Log;
}

export interface BuildImagesResult {
  /** The images of the table (base images and built ones): name:tag, short ID, size. */
  images: { name: string; id: string; size: string }[];
  /** docker-archive tars of the tiny images, by name. */
  archives: Partial<Record<ArchiveName, string>>;
  /** `docker save` tarballs written for saveDir. */
  saved: string[];
  names: ImageNames;
}

interface Ctx {
  docker: Docker;
  env: NodeJS.ProcessEnv;
  log: Log;
  scratch: Scratch;
  rebuildBase: boolean;
  refreshRootfs: boolean;
  mirror: string;
  securityMirror: string;
  /** set once debian:bookworm-slim is there */
  debianReady?: Promise<void>;
}

/** Builds the images (each base image only when missing) and returns what there is. */
export async function buildImages(options: BuildImagesOptions = {}): Promise<BuildImagesResult> {
  const env = options.env ?? process.env;
  const log = options.log ?? stderrLog;
  const plan = planImages(options.only ?? DEFAULT_TARGETS);
  const names = imageNames(env, log);
  const started = Date.now();
  const result: BuildImagesResult = { images: [], archives: {}, saved: [], names };
  for (const a of plan.archives) {
    const file = (result.archives[a] = await buildArchive(a, { env, log }));
    const size = `${(statSync(file).size / 1e6).toFixed(1)}MB (${file})`;
    result.images.push({ name: ARCHIVES[a].ref, id: archiveImageId(file).slice(7, 19), size });
  }
  if (!plan.docker) return result;

  const scratch = new Scratch();
  process.once('exit', scratch.cleanup);
  let release: (() => void) | undefined;
  try {
    const docker = await ensureEngine({ env, log });
    // one images build at a time per cache (two would debootstrap or import the same base images);
    // taken after ensureEngine, so that no dockerd started here inherits it
    release = await acquireLock(path.join(cacheDir(env), 'images', '.build.lock'), log);
    const c: Ctx = {
      docker,
      env,
      log,
      scratch,
      rebuildBase: !!(options.rebuildBase || options.refreshRootfs),
      refreshRootfs: !!options.refreshRootfs,
      mirror: env.STREAMROOM_DEBIAN_MIRROR || 'http://deb.debian.org/debian',
      securityMirror: env.STREAMROOM_DEBIAN_SECURITY_MIRROR || 'http://deb.debian.org/debian-security',
    };
    if (plan.node) await ensureNode(c);
    if (plan.debian) await ensureDebian(c);
    let goImage: string | undefined;
    if (plan.go) goImage = await ensureGo(c);
    if (plan.room)
      await buildApp(c, 'room-image/Dockerfile', names.room, ['--build-arg', `GO_IMAGE=${goImage}`]);
    if (plan.operator) await buildApp(c, 'operator/Dockerfile', names.operator, []);
    if (plan.redis) await buildRedis(c, names.redis);

    const built = builtImages(plan, names);
    if (options.saveDir) {
      if (built.length) result.saved = await saveImages(built, { dir: options.saveDir, env, log, docker });
      else log('[images] --save: nothing built but base images; nothing saved');
    }
    const rows = await Promise.all(shownImages(plan, names, goImage).map((i) => docker.row(i)));
    result.images.unshift(...rows.filter((r) => r !== undefined));
    log(`[images] done in ${since(started)}`);
    return result;
  } finally {
    release?.();
    scratch.cleanup();
    process.removeListener('exit', scratch.cleanup);
  }
}

/** After a rebuild moved `tag` to a new image, removes the old one if nothing else uses it. */
async function dropReplaced(c: Ctx, oldId: string, tag: string): Promise<void> {
  if (!oldId || oldId === (await c.docker.id(tag))) return;
  // (without -f, docker refuses while another tag or a container uses it)
  if ((await runCommand(c.docker.bin, ['rmi', oldId], { env: c.env })).code === 0) {
    c.log(`[images] removed the previous ${tag} (${oldId.replace(/^sha256:/, '')})`);
  }
}

const isRoot = () => process.getuid?.() === 0;

function debianArch(): string {
  try {
    return execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim() || 'amd64';
  } catch {
    return 'amd64';
  }
}

/** The cached, slimmed rootfs tarball; made with debootstrap when missing (or refreshRootfs). */
async function rootfsTarball(c: Ctx): Promise<string> {
  const arch = debianArch();
  const key = rootfsKey({
    arch,
    mirror: c.mirror,
    securityMirror: c.securityMirror,
    files: keyFiles(path.join(IMAGES_DIR, 'debian')),
  });
  const out = path.join(cacheDir(c.env), 'images', `debian-${SUITE}-slim-${arch}-${key}.tar`);
  if (!c.refreshRootfs && existsSync(out) && statSync(out).size > 0) {
    c.log(`[images] cached rootfs: ${out}`);
    return out;
  }
  if (!isRoot()) throw new Error('making the Debian rootfs needs root (debootstrap, chroot); rerun as root');
  if (!(await needPackages(REPO_DIR, ['debootstrap=debootstrap']))) {
    throw new Error('the Debian base image needs debootstrap (see above)');
  }
  const started = Date.now();
  const tmp = c.scratch.make();
  const rootfs = path.join(tmp, 'rootfs');
  const logFile = path.join(tmp, 'debootstrap.log');
  c.log(`[images] debootstrap --variant=minbase ${SUITE} from ${c.mirror} (about 30-60 s; log: ${logFile})`);
  await toLogFile(
    'debootstrap',
    ['--variant=minbase', `--arch=${arch}`, SUITE, rootfs, c.mirror],
    logFile,
  ).catch((cause: unknown) => {
    throw new Error(`debootstrap failed (${logFile}):\n${tail(logFile, 30)}`, { cause });
  });
  // overlay: dpkg/apt config that keeps the image slim; then the official image's apt sources
  await check('cp', ['-a', `${path.join(IMAGES_DIR, 'debian', 'overlay')}/.`, `${rootfs}/`]);
  for (const cmd of slimCommands(rootfs)) {
    const [file = '', ...args] = cmd;
    if (file === 'find' && !existsSync(args[0] ?? '')) continue;
    await check(file, args);
  }
  mkdirSync(path.join(rootfs, 'etc', 'apt', 'sources.list.d'), { recursive: true });
  writeFileSync(
    path.join(rootfs, 'etc', 'apt', 'sources.list.d', 'debian.sources'),
    debianSources(c.mirror, c.securityMirror),
  );
  writeFileSync(path.join(rootfs, 'etc', 'resolv.conf'), '');
  writeFileSync(path.join(rootfs, 'etc', 'hostname'), '');
  if (
    !isExecutable(path.join(rootfs, 'usr', 'bin', 'apt-get')) ||
    !existsSync(path.join(rootfs, 'usr', 'share', 'keyrings', 'debian-archive-keyring.gpg'))
  ) {
    throw new Error('the rootfs has no apt or no Debian archive keyring');
  }
  mkdirSync(path.dirname(out), { recursive: true });
  await check('tar', ['--numeric-owner', '-C', rootfs, '-cf', `${out}.tmp`, '.']);
  renameSync(`${out}.tmp`, out);
  c.log(`[images] rootfs made in ${since(started)}: ${out} (${Math.round(statSync(out).size / 2 ** 20)}M)`);
  return out;
}

/** Runs a command with its output (stdout and stderr) in a log file. */
function toLogFile(file: string, args: string[], logFile: string): Promise<void> {
  const fd = openSync(logFile, 'w');
  return new Promise<void>((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', fd, fd] });
    child.once('error', (cause) => reject(new Error(`cannot run ${file}`, { cause })));
    child.once('exit', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${file} exited ${signal ?? code}`)),
    );
  }).finally(() => closeSync(fd));
}

function ensureDebian(c: Ctx): Promise<void> {
  c.debianReady ??= (async () => {
    const old = await c.docker.id(DEBIAN_IMAGE);
    if (old && !c.rebuildBase) {
      c.log(`[images] ${DEBIAN_IMAGE}: present`);
      return;
    }
    const started = Date.now();
    const tarball = await rootfsTarball(c);
    await c.docker.run([
      'import',
      '--change',
      'CMD ["bash"]',
      '--change',
      `LABEL ${LABEL_KEY}="debootstrap --variant=minbase ${SUITE}, made by ${MADE_BY}"`,
      '--message',
      `${MADE_BY}: debootstrap minbase ${SUITE} (slim)`,
      tarball,
      DEBIAN_IMAGE,
    ]);
    c.log(`[images] ${DEBIAN_IMAGE}: imported (${since(started)})`);
    await dropReplaced(c, old, DEBIAN_IMAGE);
  })();
  return c.debianReady;
}

/** node:20-bookworm-slim: the Debian base + the host's node and npm, laid out as the official image. */
async function ensureNode(c: Ctx): Promise<void> {
  const old = await c.docker.id(NODE_IMAGE);
  if (old && !c.rebuildBase) {
    c.log(`[images] ${NODE_IMAGE}: present`);
    return;
  }
  await ensureDebian(c);
  const started = Date.now();
  const onPath = findExecutable('node', c.env);
  if (!onPath)
    throw new Error(`no node on PATH: install Node.js ${NODE_MAJOR} (it is copied into ${NODE_IMAGE})`);
  const node = realpathSync(onPath);
  const version = (await check(node, ['-p', 'process.versions.node'])).trim();
  if (version.split('.')[0] !== String(NODE_MAJOR)) {
    throw new Error(
      `the host's node is ${version} (${node}), not ${NODE_MAJOR}.x: put Node.js ${NODE_MAJOR} first on PATH to make ${NODE_IMAGE}`,
    );
  }
  const npmOnPath = findExecutable('npm', c.env);
  const npmCli = npmOnPath ? realpathSync(npmOnPath) : '';
  const npmDir = npmCli.endsWith('/bin/npm-cli.js')
    ? npmCli.slice(0, -'/bin/npm-cli.js'.length)
    : path.join(path.dirname(path.dirname(node)), 'lib', 'node_modules', 'npm');
  if (
    !existsSync(path.join(npmDir, 'bin', 'npm-cli.js')) ||
    !existsSync(path.join(npmDir, 'bin', 'npx-cli.js'))
  ) {
    throw new Error(`cannot find npm next to ${node} (looked in ${npmDir})`);
  }
  const ldd = await runCommand('ldd', [node]);
  if (ldd.code === 0) {
    if (/not found/.test(ldd.stdout)) throw new Error(`ldd ${node}: ${ldd.stdout}`);
    const libs = ldd.stdout
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[0] ?? '')
      .filter((l) => l && !l.startsWith('linux-vdso'));
    c.log(`[images] node ${version} (${node}) needs: ${libs.join(' ')}`);
  }
  const npmVersion = (await check(node, [path.join(npmDir, 'bin', 'npm-cli.js'), '--version'])).trim();
  c.log(
    `[images] making ${NODE_IMAGE} from ${DEBIAN_IMAGE} + node ${version} + npm ${npmVersion} (${npmDir})`,
  );
  const ctx = c.scratch.make();
  const nodeDir = path.join(IMAGES_DIR, 'node');
  await check('cp', [
    path.join(nodeDir, 'Dockerfile'),
    path.join(nodeDir, 'docker-entrypoint.sh'),
    node,
    `${ctx}/`,
  ]);
  mkdirSync(path.join(ctx, 'lib', 'node_modules'), { recursive: true });
  await check('cp', ['-a', npmDir, path.join(ctx, 'lib', 'node_modules', 'npm')]);
  const corepack = path.join(path.dirname(npmDir), 'corepack');
  if (existsSync(path.join(corepack, 'dist', 'corepack.js'))) {
    await check('cp', ['-a', corepack, path.join(ctx, 'lib', 'node_modules', 'corepack')]);
  }
  await c.docker
    .build([
      'build',
      '--build-arg',
      `NODE_VERSION=${version}`,
      '--build-arg',
      `BASE_IMAGE=${DEBIAN_IMAGE}`,
      '--label',
      `${LABEL_KEY}=host node ${version} and npm on ${DEBIAN_IMAGE}, made by ${MADE_BY}`,
      '-t',
      NODE_IMAGE,
      ctx,
    ])
    .catch((cause: unknown) => {
      throw new Error(`building ${NODE_IMAGE} (see the docker output above)`, { cause });
    });
  c.log(`[images] ${NODE_IMAGE}: built (${since(started)})`);
  await dropReplaced(c, old, NODE_IMAGE);
}

/**
 * golang:<minor>-bookworm, the room image's relay build stage: this machine's Go, on the Debian base,
 * under the name of the official image of the same minor version. Resolves with that name.
 */
async function ensureGo(c: Ctx): Promise<string> {
  const goVersion = (await runCommand('go', ['env', 'GOVERSION'], { env: c.env })).stdout
    .trim()
    .replace(/^go/, '');
  if (!goVersion) throw new Error("no go on PATH: install Go (it is copied into the relay's build image)");
  const image = goImageTag(goVersion);
  const old = await c.docker.id(image);
  if (old && !c.rebuildBase) {
    c.log(`[images] ${image}: present`);
    return image;
  }
  await ensureDebian(c);
  const started = Date.now();
  const goroot = (await check('go', ['env', 'GOROOT'], { env: c.env })).trim();
  c.log(`[images] making ${image} from ${DEBIAN_IMAGE} + go ${goVersion} (${goroot})`);
  const ctx = c.scratch.make();
  await check('cp', [path.join(IMAGES_DIR, 'go', 'Dockerfile'), `${ctx}/`]);
  await check('cp', ['-a', goroot, path.join(ctx, 'go')]);
  await c.docker
    .build([
      'build',
      '--build-arg',
      `GO_VERSION=${goVersion}`,
      '--build-arg',
      `BASE_IMAGE=${DEBIAN_IMAGE}`,
      '--label',
      `${LABEL_KEY}=host go ${goVersion} on ${DEBIAN_IMAGE}, made by ${MADE_BY}`,
      '-t',
      image,
      ctx,
    ])
    .catch((cause: unknown) => {
      throw new Error(`building ${image} (see the docker output above)`, { cause });
    });
  c.log(`[images] ${image}: built (${since(started)})`);
  await dropReplaced(c, old, image);
  return image;
}

/** The room or operator image from its Dockerfile, unchanged (its FROMs are the local base images). */
async function buildApp(c: Ctx, dockerfile: string, tag: string, extra: readonly string[]): Promise<void> {
  const started = Date.now();
  const old = await c.docker.id(tag);
  const ca = c.env.NODE_EXTRA_CA_CERTS;
  c.log(`[images] building ${tag} from ${dockerfile}`);
  await c.docker
    .build(appBuildArgs(REPO_DIR, dockerfile, tag, extra, ca && existsSync(ca) ? ca : undefined))
    .catch((cause: unknown) => {
      throw new Error(`building ${tag} from ${dockerfile} (see the docker output above)`, { cause });
    });
  c.log(`[images] ${tag}: built (${since(started)})`);
  await dropReplaced(c, old, tag);
}

/** streamroom/redis:7 from e2e/images/redis/Dockerfile (Debian's redis-server). */
async function buildRedis(c: Ctx, tag: string): Promise<void> {
  const started = Date.now();
  const old = await c.docker.id(tag);
  c.log(`[images] building ${tag} from e2e/images/redis/Dockerfile`);
  await c.docker
    .build(['build', '--build-arg', `BASE_IMAGE=${DEBIAN_IMAGE}`, '-t', tag, path.join(IMAGES_DIR, 'redis')])
    .catch((cause: unknown) => {
      throw new Error(`building ${tag} from e2e/images/redis/Dockerfile (see the docker output above)`, {
        cause,
      });
    });
  c.log(`[images] ${tag}: built (${since(started)})`);
  await dropReplaced(c, old, tag);
}

export interface SaveOptions {
  /** Default <cache>/images/save. */
  dir?: string;
  env?: NodeJS.ProcessEnv;
  log?: Log;
  docker?: Docker;
}

/**
 * `docker save` tarballs of images, one per image (e.g. for `ctr -n k8s.io images import FILE` or
 * `kind load image-archive FILE`); a tarball whose image ID has not changed since it was written
 * (recorded in FILE.id) is kept. Resolves with the tarballs' paths.
 */
export async function saveImages(images: readonly string[], options: SaveOptions = {}): Promise<string[]> {
  const env = options.env ?? process.env;
  const log = options.log ?? stderrLog;
  const dir = options.dir ?? path.join(cacheDir(env), 'images', 'save');
  let docker = options.docker;
  if (!docker) {
    const bin = pickDocker(env);
    docker = bin ? new Docker(bin, env) : undefined;
    if (!docker || !(await docker.ok())) {
      throw new Error(`'${bin ?? 'docker'} info' fails: no Docker engine (the images build starts one)`);
    }
  }
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (const image of images) {
    const id = await docker.id(image);
    if (!id) throw new Error(`no image ${image} (build it with: npx tsx e2e/src/build/cli.ts images)`);
    const file = saveFile(dir, image);
    const recorded = existsSync(`${file}.id`) ? readFileSync(`${file}.id`, 'utf8').trim() : '';
    if (recorded === id && existsSync(file) && statSync(file).size > 0) {
      log(`[images] ${image}: ${file} is up to date`);
    } else {
      log(`[images] ${image}: docker save -> ${file}`);
      rmSync(`${file}.id`, { force: true });
      await docker.run(['save', '-o', `${file}.tmp`, image]).catch((cause: unknown) => {
        throw new Error(`docker save ${image}`, { cause });
      });
      chmodSync(`${file}.tmp`, 0o644);
      renameSync(`${file}.tmp`, file);
      writeFileSync(`${file}.id`, `${id}\n`);
    }
    files.push(file);
  }
  return files;
}
