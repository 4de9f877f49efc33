import type { V1ResourceRequirements } from '@kubernetes/client-node';
import type { ExposeType, IceServerSpec, StreamRoom } from './types.js';
export interface ResolvedSpec {
    title: string;
    image: string;
    private: boolean;
    replicas: {
        min: number;
        max: number;
    };
    autoscaling: {
        targetCPUUtilizationPercentage: number;
        scaleDownStabilizationWindowSeconds: number;
    };
    resources: V1ResourceRequirements;
    expose: {
        type: ExposeType;
        port: number;
        nodePort?: number;
        host?: string;
        ingressClassName?: string;
        tlsSecretName?: string;
    };
    chat: {
        enabled: boolean;
        historySize: number;
        maxMessageLength: number;
        messagesPerMinute: number;
    };
    maxViewers: number;
    iceServers: IceServerSpec[];
    suspend: boolean;
}
export declare const DEFAULTS: {
    private: boolean;
    replicas: {
        min: number;
        max: number;
    };
    autoscaling: {
        targetCPUUtilizationPercentage: number;
        scaleDownStabilizationWindowSeconds: number;
    };
    expose: {
        type: ExposeType;
        port: number;
    };
    chat: {
        enabled: boolean;
        historySize: number;
        maxMessageLength: number;
        messagesPerMinute: number;
    };
    maxViewers: number;
    suspend: boolean;
    cpuRequest: string;
    memoryRequest: string;
    memoryLimit: string;
};
/**
 * Fills the resource defaults: a CPU and a memory request (the autoscaler needs the CPU request) and,
 * when no limits are given at all, a memory limit. A request the user left out but whose limit is given
 * defaults to that limit, as Kubernetes itself does.
 */
export declare function resolveResources(resources: V1ResourceRequirements | undefined): V1ResourceRequirements;
export declare function resolveSpec(room: StreamRoom, defaultImage: string): ResolvedSpec;
