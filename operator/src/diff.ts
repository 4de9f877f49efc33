// Decides whether a child must be applied: repeated reconciles of an unchanged room write nothing.
import { createHash } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';
import { sameQuantity } from './quantity.js';
import { canonical } from './status.js';

/** Annotation holding a hash of the configuration the operator last applied to a child. */
export const APPLIED_HASH_ANNOTATION = 'streamroom.dev/applied-hash';

export function configHash(obj: KubernetesObject): string {
  return createHash('sha256')
    .update(JSON.stringify(canonical(obj)))
    .digest('hex')
    .slice(0, 16);
}

/** The object with its configuration hash recorded in an annotation. */
export function withHash<T extends KubernetesObject>(obj: T): T {
  const hash = configHash(obj);
  return {
    ...obj,
    metadata: {
      ...obj.metadata,
      annotations: { ...obj.metadata?.annotations, [APPLIED_HASH_ANNOTATION]: hash },
    },
  };
}

/**
 * Whether every field of `desired` has the same value in `actual`. Fields only `actual` has (defaults the
 * API server filled in, fields owned by others, such as the replica count the HPA sets) do not count.
 * Lists must have the same length and match element by element (an empty list matches none, as the
 * API server omits empty lists). Quantities compare by value.
 */
export function contains(actual: unknown, desired: unknown): boolean {
  return difference(actual, desired) === undefined;
}

/** The path of the first field of `desired` that `actual` lacks or has otherwise; undefined when none. */
export function difference(actual: unknown, desired: unknown, path = ''): string | undefined {
  if (desired === undefined) return undefined;
  // The API server leaves empty lists out (omitempty): an empty list and none are the same.
  if (Array.isArray(desired) && desired.length === 0 && (actual === undefined || actual === null)) {
    return undefined;
  }
  if (Array.isArray(desired)) {
    if (!Array.isArray(actual) || actual.length !== desired.length) return path || '.';
    for (const [i, d] of desired.entries()) {
      const diff = difference(actual[i], d, `${path}[${i}]`);
      if (diff !== undefined) return diff;
    }
    return undefined;
  }
  if (desired !== null && typeof desired === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return path || '.';
    for (const [k, v] of Object.entries(desired)) {
      const diff = difference((actual as Record<string, unknown>)[k], v, `${path}.${k}`);
      if (diff !== undefined) return diff;
    }
    return undefined;
  }
  if (desired === actual) return undefined;
  const sameValue =
    (typeof desired === 'string' || typeof desired === 'number') &&
    (typeof actual === 'string' || typeof actual === 'number') &&
    (typeof desired === 'string' || typeof actual === 'string') &&
    sameQuantity(desired, actual);
  return sameValue ? undefined : path || '.';
}

/**
 * Why a child needs applying, or undefined when it does not: 'missing' when it does not exist, else the
 * first field that differs. The configuration hash annotation is one of the fields, so a changed
 * configuration (even one that only drops a field, which must then be released) counts, as does
 * someone changing a field the operator sets (drift).
 */
export function drift(
  desiredWithHash: KubernetesObject,
  actual: KubernetesObject | undefined,
): string | undefined {
  if (!actual) return 'missing';
  // Objects from a list carry no apiVersion and kind; only the content counts.
  const { apiVersion: _a, kind: _k, ...content } = desiredWithHash;
  return difference(actual, content);
}
