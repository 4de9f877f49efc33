import type { KubernetesObject } from '@kubernetes/client-node';
/** Annotation holding a hash of the configuration the operator last applied to a child. */
export declare const APPLIED_HASH_ANNOTATION = "streamroom.dev/applied-hash";
export declare function configHash(obj: KubernetesObject): string;
/** The object with its configuration hash recorded in an annotation. */
export declare function withHash<T extends KubernetesObject>(obj: T): T;
/**
 * Whether every field of `desired` has the same value in `actual`. Fields only `actual` has (defaults the
 * API server filled in, fields owned by others, such as the replica count the HPA sets) do not count.
 * Lists must have the same length and match element by element. Quantities compare by value.
 */
export declare function contains(actual: unknown, desired: unknown): boolean;
/**
 * A child needs applying when it does not exist, when the operator's configuration for it changed since
 * the last apply (a new hash: fields the operator stopped setting must be released), or when someone
 * changed a field the operator sets (drift).
 */
export declare function needsApply(desiredWithHash: KubernetesObject, actual: KubernetesObject | undefined): boolean;
