import { KubeConfig } from '@kubernetes/client-node';
import type { OperatorConfig } from './config.js';
import { Controller } from './controller.js';
import { type Logger } from './log.js';
export { loadConfig, type OperatorConfig } from './config.js';
export { Controller } from './controller.js';
export * from './builders.js';
export * from './status.js';
export * from './types.js';
export interface RunningOperator {
    controller: Controller;
    /** Base URL of the health and metrics endpoint, when it is served. */
    healthUrl?: string;
    stop(): Promise<void>;
}
export declare function kubeConfigFor(config: OperatorConfig): KubeConfig;
export declare function startOperator(config: OperatorConfig, options?: {
    kubeConfig?: KubeConfig;
    log?: Logger;
}): Promise<RunningOperator>;
