// The builds of the local cluster's tools and of the StreamRoom images, from the command line:
//
//   npx tsx e2e/src/build/cli.ts tools [--real-node] [--print-paths] [NAME...]
//   npx tsx e2e/src/build/cli.ts path NAME...
//   npx tsx e2e/src/build/cli.ts images [--only LIST]... [--rebuild-base] [--refresh-rootfs] [--save DIR]
//   npx tsx e2e/src/build/cli.ts archive pause|nettest
//   npx tsx e2e/src/build/cli.ts save [-o DIR] [IMAGE...]
//   npx tsx e2e/src/build/cli.ts names
//
// (Scripts run it as `node --import tsx e2e/src/build/cli.ts ...` from the repository root: one
// process instead of two.) Progress goes to stderr, results to stdout. Exit status 1 when a build
// fails (the message says what failed and what to install), 2 for a usage error.
import { describeError } from '../cluster/exec.js';
import {
  buildArchive,
  buildImages,
  formatTable,
  imageNames,
  parseTargets,
  saveImages,
  type ArchiveName,
} from './images.js';
import { ALL_TOOLS, buildTools, DEFAULT_TOOLS, NODE_TOOLS, toolPath } from './tools.js';

const USAGE = `usage: cli.ts COMMAND [ARGS]
  tools [--real-node] [--print-paths] [NAME...]
        build (once) and cache the cluster's binaries from the Go module proxy, in
        \${STREAMROOM_CACHE:-~/.cache/streamroom}/bin/<tool>-<version>/<tool>; a cached one is kept
        when its version command works. Default: ${DEFAULT_TOOLS.join(' ')};
        --real-node adds ${NODE_TOOLS.join(' ')}. --print-paths: each binary's path on stdout.
        Known: ${ALL_TOOLS.join(' ')}
  path NAME...
        the cached binaries' paths (built or not)
  images [--only LIST]... [--rebuild-base] [--refresh-rootfs] [--save DIR]
        build the images without a registry (docker, debootstrap): base images when missing, then
        room, operator, redis; a table of the images on stdout. --only (comma-separated, repeatable):
        base room operator redis pause nettest. --rebuild-base re-creates the base images,
        --refresh-rootfs also runs debootstrap again, --save DIR writes \`docker save\` tarballs.
  archive pause|nettest
        the docker-archive tar of a tiny image of e2e/cluster/node (no docker needed); its path on stdout
  save [-o DIR] [IMAGE...]
        \`docker save\` tarballs (default: room, operator, redis into <cache>/images/save); paths on stdout
  names
        the room, operator and redis image names, on one line

Environment: STREAMROOM_CACHE, STREAMROOM_NICE (go build's niceness, 10), GOFLAGS (-mod=readonly),
CGO_ENABLED (0), STREAMROOM_ROOM_IMAGE, STREAMROOM_OPERATOR_IMAGE, STREAMROOM_REDIS_IMAGE,
STREAMROOM_DEBIAN_MIRROR, STREAMROOM_DEBIAN_SECURITY_MIRROR, STREAMROOM_DOCKER (docker client),
STREAMROOM_DOCKERD_TIMEOUT (60), NODE_EXTRA_CA_CERTS (a CA for npm and Go inside the builds).`;

class UsageError extends Error {}

/** Options of the form --name VALUE / --name=VALUE / flags, and the rest as positional words. */
function parseArgs(args: string[], valued: readonly string[], flags: readonly string[]) {
  const values: Record<string, string[]> = {};
  const set = new Set<string>();
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? '';
    const eq = a.indexOf('=');
    const name = a.startsWith('-') && eq > 0 ? a.slice(0, eq) : a;
    if (valued.includes(name)) {
      const v = eq > 0 && name !== a ? a.slice(eq + 1) : args[++i];
      if (v === undefined) throw new UsageError(`${name} needs a value`);
      (values[name] ??= []).push(v);
    } else if (flags.includes(a)) set.add(a);
    else if (a.startsWith('-')) throw new UsageError(`unknown option ${a}`);
    else rest.push(a);
  }
  return { values, flags: set, rest };
}

async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  const out = (line: string) => process.stdout.write(`${line}\n`);
  switch (command) {
    case 'tools': {
      const a = parseArgs(args, [], ['--real-node', '--print-paths']);
      const names = [
        ...(a.rest.length ? a.rest : DEFAULT_TOOLS),
        ...(a.flags.has('--real-node') ? NODE_TOOLS : []),
      ];
      const built = await buildTools(names);
      if (a.flags.has('--print-paths')) for (const t of built) out(t.path);
      return;
    }
    case 'path': {
      if (!args.length) throw new UsageError('path: name at least one tool');
      for (const t of args) out(toolPath(t));
      return;
    }
    case 'images': {
      const a = parseArgs(args, ['--only', '--save'], ['--rebuild-base', '--refresh-rootfs']);
      if (a.rest.length) throw new UsageError(`images: unexpected ${a.rest.join(' ')}`);
      let only;
      try {
        only = parseTargets(a.values['--only'] ?? []);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      const r = await buildImages({
        only,
        rebuildBase: a.flags.has('--rebuild-base'),
        refreshRootfs: a.flags.has('--refresh-rootfs'),
        saveDir: a.values['--save']?.at(-1),
      });
      out(formatTable(r.images));
      return;
    }
    case 'archive': {
      if (args.length !== 1 || !['pause', 'nettest'].includes(args[0] ?? '')) {
        throw new UsageError('archive: pause or nettest');
      }
      out(await buildArchive(args[0] as ArchiveName));
      return;
    }
    case 'save': {
      const a = parseArgs(args, ['-o', '--output'], []);
      const n = imageNames();
      const files = await saveImages(a.rest.length ? a.rest : [n.room, n.operator, n.redis], {
        dir: (a.values['-o'] ?? a.values['--output'])?.at(-1),
      });
      for (const f of files) out(f);
      return;
    }
    case 'names': {
      const n = imageNames();
      out(`${n.room} ${n.operator} ${n.redis}`);
      return;
    }
    case '-h':
    case '--help':
    case 'help':
      out(USAGE);
      return;
    default:
      throw new UsageError(command ? `unknown command ${command}` : 'no command');
  }
}

// Temp dirs and locks are released on exit: turn Ctrl-C and SIGTERM into an exit.
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const) {
  process.once(signal, () => process.exit(code));
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof UsageError) {
    process.stderr.write(`cli.ts: ${err.message}\n${USAGE}\n`);
    process.exit(2);
  }
  process.stderr.write(`streamroom build: FAILED: ${describeError(err)}\n`);
  process.exit(1);
});
