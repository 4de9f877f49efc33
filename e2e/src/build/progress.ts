// Progress a person can follow during the builds (elapsed times, a heartbeat during long steps), and
// the few helpers the builds need beyond running commands (e2e/src/cluster/exec.ts does that).
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import { runVisible } from '../cluster/exec.js';

/** 75 -> "1m15s", 9 -> "9s" (whole seconds, as the bash scripts printed them). */
export function fmtSecs(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/** The time since `startMs` (a Date.now() value), formatted by fmtSecs. */
export const since = (startMs: number): string => fmtSecs((Date.now() - startMs) / 1000);

/** A line of progress; the builds write them to stderr (stdout is for results). */
export type Log = (line: string) => void;
export const stderrLog: Log = (line) => process.stderr.write(`${line}\n`);

/**
 * Resolves or rejects as `work` does; meanwhile calls `beat` with the seconds so far every
 * `everyMs` (a cold Kubernetes build takes minutes with no output of its own).
 */
export async function withHeartbeat<T>(
  work: Promise<T>,
  beat: (seconds: number) => void,
  everyMs = 30_000,
): Promise<T> {
  const started = Date.now();
  const timer = setInterval(() => beat((Date.now() - started) / 1000), everyMs);
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}

/** A regular file this process may execute. */
export function isExecutable(file: string): boolean {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first executable named `name` on PATH, then in the sbin directories (like `type -P`). */
export function findExecutable(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (name.includes('/')) return isExecutable(name) ? name : undefined;
  const dirs = [...(env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  return dirs
    .filter(Boolean)
    .map((d) => path.join(d, name))
    .find(isExecutable);
}

/**
 * need_packages of e2e/scripts/packages.sh (kept in bash: it is the apt glue and runs before
 * node_modules exist): as root on Debian, installs the Debian packages of the missing commands;
 * otherwise prints each missing one and the command that installs them all, and resolves false.
 * A spec is `<command>=<package>`, or `@NAME` for an array of packages.sh (e.g. `@IMAGE_PACKAGES`).
 */
export async function needPackages(repoDir: string, specs: readonly string[]): Promise<boolean> {
  const words: string[] = [];
  const positional: string[] = [];
  for (const spec of specs) {
    if (spec.startsWith('@')) {
      if (!/^@[A-Z_]+$/.test(spec)) throw new Error(`needPackages: bad array name ${spec}`);
      words.push(`"\${${spec.slice(1)}[@]}"`);
    } else {
      positional.push(spec);
      words.push(`"\${${positional.length}}"`);
    }
  }
  const script = path.join(repoDir, 'e2e', 'scripts', 'packages.sh');
  try {
    await runVisible('bash', [
      '-c',
      `source "$0" && need_packages ${words.join(' ')}`,
      script,
      ...positional,
    ]);
    return true;
  } catch {
    return false;
  }
}
