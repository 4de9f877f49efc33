#!/usr/bin/env node
// The operator process: flags and environment in, JSON logs out, a clean exit on SIGTERM.
import { loadConfig, usage } from './config.js';
import { kubeConfigFor, startOperator, type RunningOperator } from './index.js';
import { createLogger, errorMessage } from './log.js';

async function main(): Promise<void> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    console.log(usage());
    return;
  }
  let config;
  try {
    config = loadConfig(process.argv.slice(2), process.env);
  } catch (err) {
    console.error(`streamroom-operator: ${errorMessage(err)}\n\n${usage()}`);
    process.exit(2);
  }
  const log = createLogger(config.logLevel);
  let kubeConfig;
  try {
    kubeConfig = kubeConfigFor(config);
  } catch (err) {
    console.error(`streamroom-operator: cannot load a kubeconfig: ${errorMessage(err)}`);
    process.exit(2);
  }
  // Without any configuration client-node falls back to http://localhost:8080, which never answers.
  const server = kubeConfig.getCurrentCluster()?.server;
  if (!server || server === 'http://localhost:8080') {
    console.error(
      'streamroom-operator: no cluster to talk to: set --kubeconfig or KUBECONFIG, have ~/.kube/config, or run in a pod',
    );
    process.exit(2);
  }
  // Handlers first: a SIGTERM while the caches are still syncing must stop the process too.
  const running: { operator?: RunningOperator } = {};
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 20_000);
    force.unref();
    if (!running.operator) process.exit(0);
    running.operator.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ error: errorMessage(err) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  running.operator = await startOperator(config, { log, kubeConfig });
  if (stopping) await running.operator.stop().finally(() => process.exit(0));
}

main().catch((err: unknown) => {
  createLogger('error').error({ err }, 'operator failed');
  process.exit(1);
});
