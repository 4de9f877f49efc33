// The local cluster from the command line (npx tsx e2e/src/cluster/cli.ts ...). Progress goes to
// stderr; `up` and `real-up` print shell exports on stdout, for eval "$(... up)".
//
//   up [--apiserver-only | --real-node] [--kwok-nodes N] [--owner-pid PID] [--dir DIR]
//       a control plane on 127.0.0.1 (etcd, kube-apiserver, kube-controller-manager, kube-scheduler),
//       kwok's simulated nodes (2) and metrics-server; --real-node: a real node beside them (root)
//   down [--dir DIR]             stop everything up started, remove the state dir (idempotent)
//   load-images IMAGE...         docker images, tar files, pause or nettest into the real node
//   start | stop                 npm start / npm stop: the cluster with real containers (local or
//                                kind), the images, the operator's chart, the example room
//   real-up                      that cluster without the example room (for the real-container tests)
//   tag IMAGE NEW                tag an image and load it into the cluster's nodes
//
// Environment (documented overrides): STREAMROOM_CLUSTER_DIR (/tmp/streamroom-cluster),
// STREAMROOM_CACHE, STREAMROOM_UP_TIMEOUT / STREAMROOM_DOWN_TIMEOUT (seconds, 60 / 10),
// STREAMROOM_KEEP_ON_FAILURE=1, STREAMROOM_BUILD=0, STREAMROOM_NETWORK_POLICY=0, STREAMROOM_KEEP_STATE=1,
// STREAMROOM_PURGE_IMAGES=1, STREAMROOM_CLUSTER=local|kind.
import { parseArgs } from 'node:util';
import { configFromEnv, DEFAULT_DIR, mergeSettings, resolveConfig, type ClusterSettings } from './config.js';
import { devDown, devTag, devUp, downEnv, start } from './dev.js';
import { down } from './down.js';
import { describeError, progress } from './exec.js';
import { loadImages } from './images.js';
import { up } from './up.js';

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      'apiserver-only': { type: 'boolean' },
      'real-node': { type: 'boolean' },
      'kwok-nodes': { type: 'string' },
      'owner-pid': { type: 'string' },
      dir: { type: 'string' },
    },
  });
  const dir = values.dir ?? process.env.STREAMROOM_CLUSTER_DIR ?? DEFAULT_DIR;
  switch (command) {
    case 'up': {
      const settings: ClusterSettings = { dir };
      if (values['apiserver-only']) settings.apiserverOnly = true;
      if (values['real-node']) settings.realNode = true;
      if (values['kwok-nodes'] !== undefined) settings.kwokNodes = Number(values['kwok-nodes']);
      if (values['owner-pid'] !== undefined) settings.ownerPid = Number(values['owner-pid']);
      const result = await up(resolveConfig(mergeSettings(configFromEnv(), settings)));
      process.stdout.write(`${result.exportLine}\n`);
      return;
    }
    case 'down':
      return down(dir, downEnv());
    case 'load-images':
      if (positionals.length === 0) throw new Error('usage: load-images IMAGE|TAR|pause|nettest...');
      return loadImages(dir, positionals, progress('load-images'));
    case 'start':
      return start();
    case 'stop':
      return devDown();
    case 'real-up': {
      const cluster = await devUp();
      const exports = [`export KUBECONFIG=${cluster.kubeconfig}`];
      if (cluster.binDirs.length)
        exports.push(`export PATH='${[...cluster.binDirs, process.env.PATH].join(':')}'`);
      if (cluster.reused) exports.push('export STREAMROOM_CLUSTER_REUSED=1');
      process.stdout.write(`${exports.join('\n')}\n`);
      return;
    }
    case 'tag': {
      const [from, to] = positionals;
      if (!from || !to || positionals.length !== 2) throw new Error('usage: tag IMAGE NEW');
      return devTag(from, to);
    }
    default:
      throw new Error(`usage: cli.ts up|down|load-images|start|stop|real-up|tag (got '${command ?? ''}')`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`streamroom: FAILED: ${describeError(err)}\n`);
  process.exit(1);
});
