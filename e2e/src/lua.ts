// Runs an Argo CD resource health check (Lua) against an object with a real Lua interpreter.
// Argo CD runs these scripts in gopher-lua (Lua 5.1) with the resource as the global `obj`; here the
// object is turned into a Lua table constructor and the script is run as a function body by lua5.4
// (Debian package lua5.4), so a script that works here uses nothing newer than Lua 5.1 offers.
import { spawnSync } from 'node:child_process';
import { runCommand } from './cluster.js';

export function luaBinary(): string | undefined {
  for (const bin of ['lua5.4', 'lua5.3', 'lua']) {
    if (spawnSync(bin, ['-v'], { stdio: 'ignore' }).status === 0) return bin;
  }
  return undefined;
}

/** A JSON value as a Lua expression (null becomes nil, as in Argo CD: the key is absent). */
export function toLua(value: unknown): string {
  if (value === null || value === undefined) return 'nil';
  if (typeof value === 'string') return JSON.stringify(value).replace(/\\u([0-9a-fA-F]{4})/g, '\\u{$1}');
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `{${value.map(toLua).join(', ')}}`;
  const fields = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `[${JSON.stringify(k)}] = ${toLua(v)}`);
  return `{${fields.join(', ')}}`;
}

export interface Health {
  status: string;
  message?: string;
}

/** Runs the health script with `obj` set to the object; resolves with what it returned. */
export async function runHealthCheck(lua: string, script: string, obj: unknown): Promise<Health> {
  const program = [
    `obj = ${toLua(obj)}`,
    `local function health()\n${script}\nend`,
    'local hs = health()',
    'io.write(tostring(hs.status), "\\n", hs.message ~= nil and tostring(hs.message) or "")',
  ].join('\n');
  const r = await runCommand(lua, ['-'], process.env, program);
  if (r.code !== 0) throw new Error(`${lua} failed: ${r.stderr}`);
  const nl = r.stdout.indexOf('\n');
  const status = r.stdout.slice(0, nl);
  const message = r.stdout.slice(nl + 1);
  return message ? { status, message } : { status };
}
