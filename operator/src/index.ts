// Starts the operator in-process (used by main.ts and by tests that run it against a real API server).
import type { Server } from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';
import type { OperatorConfig } from './config.js';
import { Controller, informerCaches } from './controller.js';
import { KubeClient } from './kube.js';
import { RedisAcl } from './redis-acl.js';
import { serveHealth } from './health.js';
import { createLogger, type Logger } from './log.js';

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

export function kubeConfigFor(config: OperatorConfig): KubeConfig {
  const kc = new KubeConfig();
  if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
  else kc.loadFromDefault();
  return kc;
}

export async function startOperator(
  config: OperatorConfig,
  options: { kubeConfig?: KubeConfig; log?: Logger } = {},
): Promise<RunningOperator> {
  const log = options.log ?? createLogger(config.logLevel);
  const kc = options.kubeConfig ?? kubeConfigFor(config);
  const api = new KubeClient(kc);
  const acl = config.sharedRedisUrl ? new RedisAcl(config.sharedRedisUrl) : undefined;
  const controller = new Controller(
    { api, caches: informerCaches(kc, api, config, log), ...(acl ? { acl } : {}) },
    config,
    log,
  );
  let server: Server | undefined;
  let healthUrl: string | undefined;
  if (config.healthAddress) {
    ({ server, url: healthUrl } = await serveHealth(controller, config.healthAddress));
  }
  await controller.start();
  return {
    controller,
    ...(healthUrl ? { healthUrl } : {}),
    async stop() {
      server?.close();
      await controller.stop();
    },
  };
}
