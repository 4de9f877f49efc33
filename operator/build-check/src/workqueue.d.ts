export interface WorkQueueOptions {
    workers: number;
    handler: (key: string) => Promise<void>;
    /** First retry delay after a failure, doubled on each further failure. */
    baseDelayMs?: number;
    maxDelayMs?: number;
    onError?: (key: string, err: unknown, retryInMs: number) => void;
}
export declare class WorkQueue {
    private readonly options;
    private readonly queue;
    /** Keys waiting to be handled (in `queue`, or to be re-queued once their handling ends). */
    private readonly dirty;
    private readonly processing;
    private readonly failures;
    private readonly timers;
    private running;
    private shuttingDown;
    private idleWaiters;
    private readonly baseDelayMs;
    private readonly maxDelayMs;
    constructor(options: WorkQueueOptions);
    get length(): number;
    get active(): number;
    add(key: string): void;
    /** Adds the key after a delay; of several delayed adds of one key, the earliest wins. */
    addAfter(key: string, delayMs: number): void;
    /** How many times in a row the key has failed. */
    retries(key: string): number;
    backoff(failures: number): number;
    start(): void;
    /** Stops taking keys, cancels retries, and resolves once the keys being handled are done. */
    shutdown(): Promise<void>;
    /** Resolves when nothing is being handled and nothing waits in the queue. */
    idle(): Promise<void>;
    private pump;
    private handle;
}
