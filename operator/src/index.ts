// Starts the operator in-process (used by main.ts and by tests that run it against a real API server).
import type { Server } from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';
import type { OperatorConfig } from './config.js';
import { Controller, informerCaches } from './controller.js';
import { KubeClient } from './kube.js';
import { KubeLeaseApi, LeaderElector } from './leader.js';
import { RedisAcl } from './redis-acl.js';
import { serveHealth } from './health.js';
import { serveWaker } from './waker.js';
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
  /** Base URL of the waker, when it is served. */
  wakerUrl?: string;
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
  options: {
    kubeConfig?: KubeConfig;
    log?: Logger;
    /** When this replica loses its Lease (another may already lead): by default the process exits. */
    onLostLeadership?: (reason: string) => void;
  } = {},
): Promise<RunningOperator> {
  const log = options.log ?? createLogger(config.logLevel);
  const kc = options.kubeConfig ?? kubeConfigFor(config);
  const late: { controller?: Controller } = {};
  const api = new KubeClient(kc, {
    qps: config.kubeApiQps,
    burst: config.kubeApiBurst,
    onResponse: (r) => late.controller?.metrics.request(r),
  });
  const acl = config.sharedRedisUrl ? new RedisAcl(config.sharedRedisUrl) : undefined;
  const controller = new Controller(
    { api, caches: informerCaches(kc, api, config, log), ...(acl ? { acl } : {}) },
    config,
    log,
  );
  late.controller = controller;
  let server: Server | undefined;
  let healthUrl: string | undefined;
  if (config.healthAddress) {
    ({ server, url: healthUrl } = await serveHealth(controller, config.healthAddress));
  }
  let waker: Server | undefined;
  let wakerUrl: string | undefined;
  if (config.wakerListen) {
    const served = await serveWaker(controller, config.wakerListen);
    waker = served.server;
    const host = config.wakerListen.slice(0, config.wakerListen.lastIndexOf(':')) || '127.0.0.1';
    wakerUrl = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${served.port}`;
    if (config.wakerAddress) controller.setWaker({ address: config.wakerAddress, port: served.port });
    else log.warn('the waker listens but --waker-address is not set: no room hibernates');
  }
  let elector: LeaderElector | undefined;
  if (config.leaderElection) {
    const { namespace, leaseName } = config.leaderElection;
    const lease = new LeaderElector({
      namespace,
      leaseName,
      api: new KubeLeaseApi(kc),
      log,
      onStartedLeading: () => {
        log.info({ lease: `${namespace}/${leaseName}`, identity: lease.identity }, 'became the leader');
        controller.startWorkers();
      },
      // Exit at once rather than drain: the next leader may start within seconds.
      onStoppedLeading: (reason) => {
        log.error({ lease: `${namespace}/${leaseName}`, reason }, 'lost the lease: stopping');
        (options.onLostLeadership ?? (() => process.exit(1)))(reason);
      },
    });
    elector = lease;
    controller.standBy(() => lease.leader);
    // The caches fill while the Lease is contested: a standby keeps them warm for a quick takeover.
    lease.start();
    await controller.startCaches();
  } else {
    await controller.start();
  }
  return {
    controller,
    ...(healthUrl ? { healthUrl } : {}),
    ...(wakerUrl ? { wakerUrl } : {}),
    async stop() {
      server?.close();
      waker?.close();
      waker?.closeAllConnections();
      // The workers drain while this replica still holds the Lease; then it is released at once.
      await controller.stop();
      await elector?.stop({ release: true });
    },
  };
}
