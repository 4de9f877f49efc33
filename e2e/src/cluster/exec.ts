// Running commands: results instead of exceptions where a failure is expected, errors that name the
// command where it is not.
import { execFile, spawn } from 'node:child_process';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
  timeoutMs?: number;
  cwd?: string;
}

/** Runs a command to its end, whatever its exit code (127 when it cannot be started). */
export function runCommand(binary: string, args: string[], options: RunOptions = {}): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = execFile(
      binary,
      args,
      {
        env: options.env ?? process.env,
        maxBuffer: 64 << 20,
        ...(options.timeoutMs ? { timeout: options.timeoutMs, killSignal: 'SIGKILL' as const } : {}),
        ...(options.cwd ? { cwd: options.cwd } : {}),
      },
      (error, stdout, stderr) => {
        const code = !error
          ? 0
          : typeof error.code === 'number'
            ? error.code
            : error.code === 'ENOENT'
              ? 127
              : 1;
        resolve({ code, stdout, stderr: stderr || (error && !stderr ? error.message : '') });
      },
    );
    child.stdin?.on('error', () => undefined); // a command that exits without reading its input
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Runs a command; its stdout, or an Error naming it with the end of its stderr. */
export async function check(binary: string, args: string[], options: RunOptions = {}): Promise<string> {
  const r = await runCommand(binary, args, options);
  if (r.code !== 0) {
    const tail = r.stderr.trim().split('\n').slice(-20).join('\n');
    throw new Error(`${binary} ${args.join(' ')} exited with ${r.code}${tail ? `:\n${tail}` : ''}`);
  }
  return r.stdout;
}

/** Runs a command with its output going to our stderr (long steps a person watches); throws on failure. */
export function runVisible(binary: string, args: string[], options: RunOptions = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, {
      env: options.env ?? process.env,
      stdio: ['ignore', process.stderr, process.stderr],
      ...(options.cwd ? { cwd: options.cwd } : {}),
    });
    child.on('error', (err) => reject(new Error(`starting ${binary}`, { cause: err })));
    child.on('exit', (code, signal) =>
      code === 0
        ? resolve()
        : reject(new Error(`${binary} ${args.join(' ')} failed (${signal ?? `exit ${code}`})`)),
    );
  });
}

/** The message of an error and of its causes, one after the other. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err; e !== undefined && parts.length < 10;) {
    if (e instanceof Error) {
      parts.push(e.message);
      e = e.cause;
    } else {
      parts.push(String(e));
      break;
    }
  }
  return parts.join(': ');
}

/** Lines for a person: `<prefix>: <message> (<seconds since start>)`. */
export interface Progress {
  (message: string): void;
  /** Seconds since the start, one decimal: "4.2s". */
  elapsed(): string;
  /** Where the lines go. */
  sink: (line: string) => void;
}

export function progress(
  prefix: string,
  sink: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
) {
  const t0 = performance.now();
  const elapsed = () => `${((performance.now() - t0) / 1000).toFixed(1)}s`;
  const log = ((message: string) => sink(`${prefix}: ${message} (${elapsed()})`)) as Progress;
  log.elapsed = elapsed;
  log.sink = sink;
  return log;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
