// What the cluster needs from elsewhere: the cached binaries (e2e/src/build/tools.ts builds them from
// the Go module proxy), the node's tiny images and the project's images (e2e/src/build/images.ts),
// and Debian packages (e2e/scripts/packages.sh, bash: it runs before node_modules exist).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  buildArchive,
  buildImages as buildAllImages,
  imageNames as names,
  type ArchiveName,
  type ImageNames,
} from '../build/images.js';
import { buildTools as build, DEFAULT_TOOLS, type Tool } from '../build/tools.js';
import { runVisible } from './exec.js';

export const E2E_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const REPO_DIR = path.resolve(E2E_DIR, '..');
/** Static files of the cluster: kwok configs, RBAC manifests, the tools' go.mod pins. */
export const FILES_DIR = path.join(E2E_DIR, 'cluster');

export { isTool, toolPath, NODE_TOOLS, type Tool } from '../build/tools.js';

/** Builds the named tools (a no-op for cached ones); its progress goes to stderr. */
export async function buildTools(tools: Tool[]): Promise<void> {
  if (tools.length === 0) return;
  await build(tools).catch((cause: unknown) => {
    throw new Error(`building ${tools.join(', ')} (e2e/src/build/tools.ts)`, { cause });
  });
}

/** The control plane's tools plus these (e.g. the real node's), the way npm start and npm test build them. */
export async function buildCluster(extra: readonly Tool[] = []): Promise<void> {
  // (Go 1.24 or newer, else what to install: the same check as npm test's)
  await runVisible('bash', ['-c', 'source e2e/scripts/preflight.sh && need_go'], { cwd: REPO_DIR }).catch(
    (cause: unknown) => {
      throw new Error('no usable Go (see above)', { cause });
    },
  );
  await buildTools([...DEFAULT_TOOLS, ...extra]);
}

/** The docker-archive tar of one of the node's own images (built from e2e/cluster/node/<name>). */
export async function nodeImageTar(name: ArchiveName): Promise<string> {
  return buildArchive(name, { log: () => undefined }).catch((cause: unknown) => {
    throw new Error(`building the ${name} image (e2e/src/build/images.ts)`, { cause });
  });
}

/** Builds the room, operator and Redis images (base images only when missing); progress on stderr. */
export async function buildImages(): Promise<void> {
  await buildAllImages().catch((cause: unknown) => {
    throw new Error('building the images (e2e/src/build/images.ts)', { cause });
  });
}

/** The image names the build makes (the ones the operator and the chart ask for). */
export function imageNames(): ImageNames {
  return names();
}

/**
 * Installs the missing Debian packages of these groups of e2e/scripts/packages.sh (NODE_PACKAGES,
 * IMAGE_PACKAGES, ...) in one apt-get call as root, else names them with the install command
 * (on stderr) and throws.
 */
export async function needPackages(...groups: string[]): Promise<void> {
  const arrays = groups.map((g) => `"\${${g}[@]}"`).join(' ');
  const script = `source "$1" && need_packages ${arrays}`;
  await runVisible('bash', ['-c', script, '_', path.join(E2E_DIR, 'scripts', 'packages.sh')]).catch(
    (cause: unknown) => {
      throw new Error(`missing Debian packages (${groups.join(', ')}; see above)`, { cause });
    },
  );
}
