import type { KubernetesObject, V1Deployment, V1EnvVar, V1Ingress, V1OwnerReference, V1Secret, V1Service, V2HorizontalPodAutoscaler } from '@kubernetes/client-node';
import { type ResolvedSpec } from './defaults.js';
import { type StreamRoom } from './types.js';
/** The one field manager the operator applies with. */
export declare const FIELD_MANAGER = "streamroom-operator";
/** Port the room server listens on inside its container. */
export declare const ROOM_CONTAINER_PORT = 8080;
/** Grace period the room pods get on shutdown; the room server exits well within it. */
export declare const TERMINATION_GRACE_SECONDS = 30;
export declare const ROOM_SHUTDOWN_TIMEOUT_SECONDS = 20;
export declare const BROADCASTER_KEY = "broadcasterKey";
export declare const VIEWER_KEY = "viewerKey";
export interface BuildOptions {
    /** Room image used when the StreamRoom does not name one. */
    defaultImage: string;
}
export declare function keysSecretName(roomName: string): string;
/** Labels that select a room's pods; they never change over the room's life. */
export declare function selectorLabels(room: StreamRoom): Record<string, string>;
export declare const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";
export declare const MANAGED_BY = "streamroom-operator";
/** The recommended app.kubernetes.io labels for every child of a room. */
export declare function roomLabels(room: StreamRoom, image?: string): Record<string, string>;
/** The tag of an image reference when it is a valid label value (digests and odd tags are skipped). */
export declare function imageTag(image: string): string | undefined;
export declare function ownerReference(room: StreamRoom): V1OwnerReference;
/** Environment of the room server container: the contract between operator and room image. */
export declare function roomEnv(room: StreamRoom, spec: ResolvedSpec): V1EnvVar[];
export declare function buildDeployment(room: StreamRoom, spec: ResolvedSpec): V1Deployment;
export declare function buildService(room: StreamRoom, spec: ResolvedSpec): V1Service;
export declare function buildHpa(room: StreamRoom, spec: ResolvedSpec): V2HorizontalPodAutoscaler;
export declare function buildIngress(room: StreamRoom, spec: ResolvedSpec): V1Ingress;
/**
 * The room's Secret: its broadcaster key and, for a private room, its viewer key. Keys that already exist
 * are kept as they are (never rotated by a reconcile); only missing ones are generated.
 */
export declare function buildKeysSecret(room: StreamRoom, spec: ResolvedSpec, existing: V1Secret | undefined, generateKey: () => string): V1Secret;
export type ChildKind = 'Secret' | 'Deployment' | 'Service' | 'HorizontalPodAutoscaler' | 'Ingress';
/** Every kind of child a room can own, in the order they are applied. */
export declare const CHILD_KINDS: readonly ChildKind[];
export interface DesiredChildren {
    spec: ResolvedSpec;
    /** Objects to apply, in order. */
    apply: KubernetesObject[];
    /** Kinds of child this room must not have (they are deleted when present). */
    absent: ChildKind[];
}
/** Everything a room wants, given its existing Secret (whose keys are kept). */
export declare function desiredChildren(room: StreamRoom, options: BuildOptions, existingSecret: V1Secret | undefined, generateKey: () => string): DesiredChildren;
