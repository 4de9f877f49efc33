import { type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { type StreamRoom, type StreamRoomStatus } from './types.js';
/** The status code of a failed API call, when it has one. */
export declare function statusCode(err: unknown): number | undefined;
export interface KindInfo {
    apiVersion: string;
    kind: string;
    plural: string;
}
/** Path of a kind's collection, in one namespace or in all. */
export declare function collectionPath(k: KindInfo, namespace?: string): string;
export declare class KubeClient {
    private readonly objects;
    private readonly custom;
    private readonly core;
    private nodeAddressCache;
    /** Writes sent to the API server, by verb (for metrics and the no-write tests). */
    readonly writes: {
        apply: number;
        delete: number;
        status: number;
        event: number;
    };
    private readonly instance;
    constructor(kc: KubeConfig);
    list<T extends KubernetesObject>(k: KindInfo, namespace: string | undefined, labelSelector?: string): Promise<KubernetesListObject<T>>;
    /** Reads one object; undefined when it does not exist. */
    read<T extends KubernetesObject>(obj: KubernetesObject): Promise<T | undefined>;
    /** Server-side apply with the operator's field manager, taking over fields others changed. */
    apply<T extends KubernetesObject>(obj: T): Promise<T>;
    delete(obj: KubernetesObject): Promise<void>;
    patchRoomStatus(room: StreamRoom, status: StreamRoomStatus): Promise<void>;
    /** Records a Kubernetes Event on the room, shown by `kubectl describe streamroom`. */
    event(room: StreamRoom, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
    /**
     * An address of a ready node (external IP first, then internal IP, then host name), for NodePort URLs.
     * Cached for 30 seconds; undefined when no node can be listed.
     */
    nodeAddress(): Promise<string | undefined>;
}
