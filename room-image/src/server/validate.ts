/**
 * Validation of everything a socket may send. Validators return a sanitized copy (only known
 * fields) or a rejection reason; nothing a client sends is relayed verbatim.
 */
import type { RejectReason, SignalData, SignalEnvelope } from '../protocol.js';

export type Result<T> = { ok: true; value: T } | { ok: false; reason: RejectReason };

const ok = <T>(value: T): Result<T> => ({ ok: true, value });
const bad = <T>(reason: RejectReason = 'invalid_payload'): Result<T> => ({ ok: false, reason });

export const LIMITS = {
  sdp: 32 * 1024,
  candidate: 1024,
  sdpMid: 64,
  id: 64,
  name: 32,
  key: 512,
  userToken: 128,
} as const;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

const ID = /^[A-Za-z0-9_-]{1,64}$/;

export type { SignalData, SignalEnvelope };

function signalData(v: unknown): Result<SignalData> {
  if (!isPlainObject(v)) return bad();
  switch (v['type']) {
    case 'offer':
    case 'answer': {
      const sdp = v['sdp'];
      if (typeof sdp !== 'string') return bad();
      if (sdp.length > LIMITS.sdp) return bad('too_large');
      return ok({ type: v['type'], sdp });
    }
    case 'candidate': {
      const c = v['candidate'];
      if (!isPlainObject(c)) return bad();
      const cand = c['candidate'];
      const mid = c['sdpMid'] ?? null;
      const index = c['sdpMLineIndex'] ?? null;
      if (typeof cand !== 'string') return bad();
      if (cand.length > LIMITS.candidate) return bad('too_large');
      if (mid !== null && (typeof mid !== 'string' || mid.length > LIMITS.sdpMid)) return bad();
      if (
        index !== null &&
        (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index > 64)
      ) {
        return bad();
      }
      return ok({ type: 'candidate', candidate: { candidate: cand, sdpMid: mid, sdpMLineIndex: index } });
    }
    case 'renegotiate':
      if (v['renegotiate'] !== true) return bad();
      return ok({ type: 'renegotiate', renegotiate: true });
    default:
      return bad();
  }
}

export function signalEnvelope(v: unknown): Result<SignalEnvelope> {
  if (!isPlainObject(v)) return bad();
  const to = v['to'];
  const pc = v['pc'];
  if (to !== undefined && (typeof to !== 'string' || to.length > LIMITS.id)) return bad();
  if (typeof pc !== 'string' || !ID.test(pc)) return bad();
  const data = signalData(v['data']);
  if (!data.ok) return data;
  return ok({ to, pc, data: data.value });
}

// Letters, marks, numbers, spaces and a little punctuation; no control or format characters.
const NAME = /^[\p{L}\p{M}\p{N}][\p{L}\p{M}\p{N} ._'-]*$/u;

export function displayName(v: unknown): Result<string> {
  if (typeof v !== 'string') return bad();
  if (v.length > 256) return bad('too_large');
  const name = v.normalize('NFC').trim().replace(/\s+/g, ' ');
  if (name.length === 0 || [...name].length > LIMITS.name || !NAME.test(name)) return bad();
  return ok(name);
}

export function namePayload(v: unknown): Result<string> {
  if (!isPlainObject(v)) return bad();
  return displayName(v['name']);
}

export function chatPayload(v: unknown, maxLength: number): Result<string> {
  if (!isPlainObject(v)) return bad();
  const text = v['text'];
  if (typeof text !== 'string') return bad();
  // Cheap size bound before any per-character work.
  if (text.length > maxLength * 2) return bad('too_large');
  // Drop control characters except newline and tab; collapse runs of blank lines.
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u0008\u000B-\u001F\u007F\u202A-\u202E\u2066-\u2069]/g, '').trim();
  if (clean.length === 0) return bad();
  if ([...clean].length > maxLength) return bad('too_large');
  return ok(clean.replace(/\n{3,}/g, '\n\n'));
}

export function streamStatePayload(v: unknown): Result<boolean> {
  if (!isPlainObject(v) || typeof v['live'] !== 'boolean') return bad();
  return ok(v['live']);
}

export interface Auth {
  role: 'broadcaster' | 'viewer';
  key: string | undefined;
  name: string | undefined;
  /** The user token a previous `welcome` handed out (checked by the handshake). */
  user: string | undefined;
}

export function authPayload(v: unknown): Result<Auth> {
  if (!isPlainObject(v)) return bad();
  const role = v['role'];
  const key = v['key'];
  const name = v['name'];
  if (role !== 'broadcaster' && role !== 'viewer') return bad();
  if (key !== undefined && (typeof key !== 'string' || key.length > LIMITS.key)) return bad();
  const user = v['user'];
  if (user !== undefined && (typeof user !== 'string' || user.length > LIMITS.userToken)) return bad();
  let cleanName: string | undefined;
  if (name !== undefined && name !== '') {
    const n = displayName(name);
    if (!n.ok) return n;
    cleanName = n.value;
  }
  return ok({ role, key, name: cleanName, user });
}
