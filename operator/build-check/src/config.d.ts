import type { LogLevel } from './log.js';
export interface OperatorConfig {
    /** Room image for StreamRooms that do not name one. */
    defaultImage: string;
    /** Namespaces to watch; empty means all. */
    namespaces: string[];
    workers: number;
    logLevel: LogLevel;
    /** Every room is reconciled at least this often, even when nothing changes. */
    resyncPeriodSeconds: number;
    /** A watch that delivers nothing for this long is replaced by a fresh list and watch. */
    watchIdleTimeoutSeconds: number;
    clusterDomain: string;
    /** Address used in NodePort URLs instead of a node's own address (e.g. a port-forwarded host). */
    nodeAddress?: string;
    /** host:port of the health and metrics endpoint; empty disables it. */
    healthAddress: string;
    /** Path of a kubeconfig; when empty the usual lookup ($KUBECONFIG, ~/.kube/config, in-cluster). */
    kubeconfig?: string;
}
export declare const DEFAULT_ROOM_IMAGE = "streamroom/room:0.1.0";
export declare function usage(): string;
/** Parses flags and environment; throws an Error with a clear message on bad input. */
export declare function loadConfig(argv: string[], env: Record<string, string | undefined>): OperatorConfig;
