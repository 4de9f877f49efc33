import type { V1Condition, V1Deployment, V1Service } from '@kubernetes/client-node';
import type { ResolvedSpec } from './defaults.js';
import type { StreamRoom, StreamRoomStatus } from './types.js';
export interface ObservedState {
    room: StreamRoom;
    spec: ResolvedSpec;
    deployment?: V1Deployment;
    service?: V1Service;
    /** Address of a node, for NodePort rooms. */
    nodeAddress?: string;
    /** DNS suffix of the cluster, for ClusterIP URLs. */
    clusterDomain: string;
    /** Set when the last reconcile failed: a CamelCase reason and a human message. */
    error?: {
        reason: string;
        message: string;
    };
    keysSecretName: string;
    now: Date;
}
/** The URL viewers open, or undefined while it is not known yet (a load balancer without an address). */
export declare function roomUrl(s: Omit<ObservedState, 'now' | 'error' | 'deployment' | 'keysSecretName'>): string | undefined;
type ConditionType = 'Ready' | 'Available' | 'Progressing' | 'Degraded';
type Cond = {
    status: 'True' | 'False' | 'Unknown';
    reason: string;
    message: string;
};
/**
 * Conditions as metav1.Condition: lastTransitionTime changes only when a condition's status changes.
 */
export declare function mergeConditions(previous: V1Condition[] | undefined, next: Record<ConditionType, Cond>, generation: number | undefined, now: Date): V1Condition[];
export declare function computeStatus(s: ObservedState): StreamRoomStatus;
/** Whether a newly computed status differs from the stored one (and so must be written). */
export declare function statusChanged(current: StreamRoomStatus | undefined, next: StreamRoomStatus): boolean;
/** JSON value with object keys sorted, so that key order never counts as a change. */
export declare function canonical(value: unknown): unknown;
export {};
