#!/usr/bin/env node
// The operator process: flags and environment in, JSON logs out, a clean exit on SIGTERM.
import { loadConfig, usage } from './config.js';
import { startOperator } from './index.js';
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
  const operator = await startOperator(config, { log });
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal });
    const force = setTimeout(() => process.exit(1), 20_000);
    force.unref();
    operator.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error('shutdown failed', { error: errorMessage(err) });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  createLogger('error').error('operator failed', { error: errorMessage(err) });
  process.exit(1);
});
