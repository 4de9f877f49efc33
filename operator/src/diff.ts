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
 * Lists must have the same length and match element by element. Quantities compare by value.
 */
export function contains(actual: unknown, desired: unknown): boolean {
  if (desired === undefined) return true;
  if (Array.isArray(desired)) {
    return (
      Array.isArray(actual) &&
      actual.length === desired.length &&
      desired.every((d, i) => contains(actual[i], d))
    );
  }
  if (desired !== null && typeof desired === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return false;
    return Object.entries(desired).every(([k, v]) => contains((actual as Record<string, unknown>)[k], v));
  }
  if (desired === actual) return true;
  return (
    (typeof desired === 'string' || typeof desired === 'number') &&
    (typeof actual === 'string' || typeof actual === 'number') &&
    (typeof desired === 'string' || typeof actual === 'string') &&
    sameQuantity(desired, actual)
  );
}

/**
 * A child needs applying when it does not exist, when the operator's configuration for it changed since
 * the last apply (a new hash: fields the operator stopped setting must be released), or when someone
 * changed a field the operator sets (drift).
 */
export function needsApply(desiredWithHash: KubernetesObject, actual: KubernetesObject | undefined): boolean {
  if (!actual) return true;
  // Objects from a list carry no apiVersion and kind; only the content counts.
  const { apiVersion: _a, kind: _k, ...content } = desiredWithHash;
  return !contains(actual, content);
}
