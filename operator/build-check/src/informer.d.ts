import { type KubeConfig, type KubernetesObject, type ListPromise } from '@kubernetes/client-node';
import { type Logger } from './log.js';
export type Handler<T> = (obj: T) => void;
export interface InformerOptions {
    /** Relist when no event has arrived for this long. */
    idleTimeoutMs: number;
    baseBackoffMs?: number;
    maxBackoffMs?: number;
    log: Logger;
    name: string;
}
export declare class ResilientInformer<T extends KubernetesObject> {
    private readonly kc;
    private readonly path;
    private readonly listFn;
    private readonly labelSelector;
    private readonly options;
    private lw;
    private readonly handlers;
    private lastActivity;
    private failures;
    private stopped;
    private restartTimer;
    private watchdog;
    private synced;
    private syncWaiters;
    /** Times the informer was restarted after an error, and relisted by the watchdog (for metrics and tests). */
    restarts: number;
    relists: number;
    constructor(kc: KubeConfig, path: string, listFn: ListPromise<T>, labelSelector: string | undefined, options: InformerOptions);
    on(verb: 'add' | 'update' | 'delete', handler: Handler<T>): void;
    get(name: string, namespace: string): T | undefined;
    list(namespace?: string): T[];
    get hasSynced(): boolean;
    /** Resolves once the first list has filled the cache. */
    waitForSync(): Promise<void>;
    start(): void;
    stop(): Promise<void>;
    /** Replaces the ListWatch with a fresh one, which lists, then watches. */
    private connect;
    /** After a relist, objects the old cache had and the new list lacks were deleted while unseen. */
    private afterList;
}
