import type { KubeConfig } from '@kubernetes/client-node';
import type { OperatorConfig } from './config.js';
import { KubeClient } from './kube.js';
import { type Logger } from './log.js';
import { WorkQueue } from './workqueue.js';
/** A reconcile failure with a reason for the room's conditions. */
export declare class ReconcileError extends Error {
    readonly reason: string;
    constructor(reason: string, message: string);
}
export interface ControllerStats {
    reconciles: number;
    reconcileErrors: number;
}
export declare class Controller {
    private readonly config;
    private readonly log;
    readonly kube: KubeClient;
    readonly queue: WorkQueue;
    readonly stats: ControllerStats;
    private readonly rooms;
    private readonly children;
    private resyncTimer;
    /** The last warning recorded per room, so a failing room does not fill the Event list. */
    private readonly lastWarning;
    private started;
    constructor(kc: KubeConfig, config: OperatorConfig, log: Logger);
    /** Starts the informers, waits for their first list, then starts the workers and the periodic resync. */
    start(): Promise<void>;
    get ready(): boolean;
    get informerRestarts(): number;
    /** Enqueues every known room (level-triggered: a periodic full pass repairs anything missed). */
    resync(): void;
    stop(): Promise<void>;
    /** Brings one room's children and status to what the room wants. Throws to be retried with backoff. */
    reconcile(key: string): Promise<void>;
    /** The child from the cache, or from the API when the cache lacks it; refuses one the room does not own. */
    private ownedChild;
    private nodeAddress;
    private writeStatus;
    /** Records an Event; a warning is recorded once until a different one (or success) comes. */
    private record;
}
