#!/usr/bin/env node
/**
 * Container entry point. Runs as PID 1 without an init: it handles SIGTERM/SIGINT itself and
 * spawns no child processes, so there are no zombies to reap.
 */
import { ConfigError, loadConfig } from './config.js';
import { createLogger, startServer } from './server.js';

const log = createLogger();

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env, (variable, message) =>
      log.warn({ variable }, `configuration adjusted: ${variable} ${message}`),
    );
  } catch (err) {
    if (err instanceof ConfigError) {
      log.error({ variable: err.variable }, `invalid configuration: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const timeoutMs = config.shutdownTimeoutSeconds * 1000;
  // Give the endpoints controller a moment to take the pod out of the Service before clients
  // are told to reconnect, but keep well inside the grace period.
  const drainMs = Math.min(3000, Math.floor(timeoutMs / 4));
  const server = await startServer(config, { drainMs, log });
  log.info(
    {
      port: server.port,
      metricsPort: server.metricsPort,
      room: config.roomName,
      namespace: config.roomNamespace,
      private: config.viewerKey !== undefined,
    },
    'room server listening',
  );

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    setTimeout(() => {
      log.error('shutdown timed out, exiting');
      process.exit(1);
    }, timeoutMs).unref();
    server.close().then(
      () => {
        log.info('shutdown complete');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  log.error({ err }, 'fatal');
  process.exit(1);
});
