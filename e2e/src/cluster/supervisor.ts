// The cluster's processes: each started in a process group of its own (setsid) with its log in
// logs/<name>.log and a line `<name> <pgid> <binary>` in the state dir's pids file; readiness waits
// that stop as soon as a component dies, naming it; and the ordered stop.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, openSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import type { ClusterPaths } from './config.js';
import { describeError, sleep } from './exec.js';

export interface ProcessRecord {
  name: string;
  /** Process id = process group id (each component leads its own group). */
  pid: number;
  binary: string;
}

export function parsePids(text: string): ProcessRecord[] {
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 3 && /^\d+$/.test(f[1] ?? ''))
    .map(([name = '', pid = '0', ...bin]) => ({ name, pid: Number(pid), binary: bin.join(' ') }));
}

export const readPids = (paths: ClusterPaths): ProcessRecord[] =>
  existsSync(paths.pids) ? parsePids(readFileSync(paths.pids, 'utf8')) : [];

/** Is the process (or, with a negative id, any process of the group) there? */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The last lines of a component's log. */
export function logTail(paths: ClusterPaths, name: string, lines = 15): string {
  try {
    return readFileSync(path.join(paths.logs, `${name}.log`), 'utf8')
      .trimEnd()
      .split('\n')
      .slice(-lines)
      .join('\n');
  } catch {
    return '';
  }
}

interface Started {
  record: ProcessRecord;
  child: ChildProcess;
  exit?: string;
}

export class Supervisor {
  private readonly started: Started[] = [];

  constructor(
    private readonly paths: ClusterPaths,
    private readonly timeoutMs: number,
  ) {}

  /** Starts a component in its own process group; its output goes to logs/<name>.log. */
  start(name: string, binary: string, args: string[], env: NodeJS.ProcessEnv = process.env): ProcessRecord {
    const logFile = path.join(this.paths.logs, `${name}.log`);
    const fd = openSync(logFile, 'w');
    let child: ChildProcess;
    try {
      child = spawn(binary, args, { detached: true, stdio: ['ignore', fd, fd], env });
    } finally {
      closeSync(fd);
    }
    if (child.pid === undefined) throw new Error(`starting ${name}: cannot run ${binary}`);
    const entry: Started = { record: { name, pid: child.pid, binary }, child };
    child.on('error', (err) => (entry.exit = `could not run ${binary}: ${err.message}`));
    child.on('exit', (code, signal) => (entry.exit = signal ? `killed by ${signal}` : `exit code ${code}`));
    child.unref();
    this.started.push(entry);
    appendFileSync(this.paths.pids, `${name} ${child.pid} ${binary}\n`);
    return entry.record;
  }

  /** The first started component that has exited, with how. */
  dead(): { record: ProcessRecord; how: string } | undefined {
    for (const s of this.started) {
      if (s.exit) return { record: s.record, how: s.exit };
      // (not our child any more, e.g. restarted by a test: ask the kernel)
      if (s.child.exitCode === null && s.child.signalCode === null && !alive(s.record.pid)) {
        return { record: s.record, how: 'gone' };
      }
    }
    return undefined;
  }

  /**
   * Polls `ready` until it returns true; throws when the timeout passes or a component dies (naming
   * it, with the end of its log). Errors thrown by `ready` count as "not yet".
   */
  async waitFor(what: string, ready: () => Promise<boolean>, timeoutMs = this.timeoutMs): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      try {
        if (await ready()) return;
      } catch (err) {
        last = err;
      }
      const dead = this.dead();
      if (dead) {
        const { name, pid } = dead.record;
        throw new Error(
          `${name} (pid ${pid}) exited (${dead.how}) while waiting for ${what}; ` +
            `see ${path.join(this.paths.logs, `${name}.log`)}:\n${logTail(this.paths, name)}`,
        );
      }
      if (Date.now() >= deadline) {
        throw new Error(
          `timed out after ${timeoutMs / 1000}s waiting for ${what}${last ? ` (last: ${describeError(last)})` : ''}`,
        );
      }
      await sleep(100);
    }
  }
}

/** The process group id of this process (/proc/self/stat, field 5). */
function ownProcessGroup(): number {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  } catch {
    return -1;
  }
}

/**
 * The groups still to stop, newest first. Only a group whose leader is still the binary we started
 * (guards against pid reuse), or a leaderless group, is signalled; never our own group (the
 * watchdog that runs down).
 */
export function groupsToStop(records: ProcessRecord[]): ProcessRecord[] {
  const own = ownProcessGroup();
  const out: ProcessRecord[] = [];
  for (const r of records) {
    if (r.pid === own || r.pid <= 1) continue;
    if (alive(r.pid)) {
      let exe = '';
      try {
        exe = path.basename(readlinkSync(`/proc/${r.pid}/exe`).replace(/ \(deleted\)$/, ''));
      } catch {
        // (gone meanwhile)
      }
      if (exe && exe !== path.basename(r.binary) && exe !== 'bash') continue;
    } else if (!alive(-r.pid)) {
      continue;
    }
    out.unshift(r);
  }
  return out;
}

/** SIGTERMs these groups together, waits up to timeoutMs, SIGKILLs what is left. Names the stubborn. */
export async function stopGroups(
  groups: ProcessRecord[],
  timeoutMs: number,
  warn: (message: string) => void,
): Promise<void> {
  for (const g of groups) {
    try {
      process.kill(-g.pid, 'SIGTERM');
    } catch {
      // (already gone)
    }
  }
  const deadline = Date.now() + timeoutMs;
  for (const g of groups) {
    while (alive(-g.pid) && Date.now() < deadline) await sleep(25);
    if (!alive(-g.pid)) continue;
    warn(`${g.name} did not stop in ${timeoutMs / 1000}s; sending SIGKILL`);
    try {
      process.kill(-g.pid, 'SIGKILL');
    } catch {
      // (gone meanwhile)
    }
    for (let i = 0; i < 50 && alive(-g.pid); i++) await sleep(100);
    if (alive(-g.pid)) warn(`WARNING: process group ${g.pid} (${g.name}) is still alive`);
  }
}
