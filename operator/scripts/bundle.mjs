// Bundles the compiled operator (dist/main.js, from `npm run build`) and the parts of its
// dependencies it reaches into one ES module, dist/bundle/main.js, so that the container image needs
// no node_modules (operator/Dockerfile copies dist/bundle/ to /app/dist/).
//
//   npm run bundle -w operator                # tsc, then this script
//   node scripts/bundle.mjs                   # dist/bundle/main.js and package.json ("type": "module")
//   node scripts/bundle.mjs --sourcemap       # also dist/bundle/main.js.map (~2 MB; linked, no sources
//                                             # inside; for node --enable-source-maps)
//   node scripts/bundle.mjs --analyze         # also print what the bundle is made of
// What went in is also written to dist/bundle-meta.json (esbuild's metafile; https://esbuild.github.io/analyze/).
//
// The bundle's input is what tsc emitted, so it runs the same code as `node dist/main.js`. It fails
// when the result would still need a package at run time, or holds one that is not a production
// dependency of the operator.
import { builtinModules } from 'node:module';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { URL, fileURLToPath } from 'node:url';
import { build, analyzeMetafile } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const entry = `${root}dist/main.js`;
const outdir = `${root}dist/bundle`;
const outfile = `${outdir}/main.js`;
const args = new Set(process.argv.slice(2));
for (const a of args) {
  if (!['--sourcemap', '--analyze'].includes(a)) {
    console.error(`bundle.mjs: unknown argument ${a}`);
    process.exit(2);
  }
}
const sourcemap = args.has('--sourcemap');

try {
  statSync(entry);
} catch {
  console.error(`bundle.mjs: ${entry} is missing: run \`npm run build -w operator\` first`);
  process.exit(1);
}

// The operator's production dependencies, from package-lock.json (see productionPackages below).
const repoRoot = path.dirname(root.replace(/\/$/, ''));
const production = productionPackages(
  JSON.parse(readFileSync(path.join(repoRoot, 'package-lock.json'), 'utf8')),
);
const productionNames = new Set([...production].map((loc) => loc.replace(/^.*node_modules\//, '')));

// Optional modules the dependencies probe for in a try/catch (require or import()) and do without.
// One that is not a production dependency (not installed in a production install) is left as an
// import: it fails at run time exactly as it would without a bundle. One that is (e.g.
// @opentelemetry/api, a dependency of prom-client) is bundled like any other.
const optionalModules = [
  // @redis/client's optional peer dependencies: OpenTelemetry metrics, the DIGEST command
  '@opentelemetry/api',
  '@node-rs/xxhash',
  // ws's native speed-ups (client-node's exec/attach/port-forward websockets)
  'bufferutil',
  'utf-8-validate',
  // node-fetch 2's non-UTF-8 body decoding (textConverted())
  'encoding',
  // debug's colour detection (a dev dependency here, through jest: it must not slip in from the
  // build's node_modules)
  'supports-color',
];
const optionalExternals = optionalModules.filter((m) => !productionNames.has(m));

// CommonJS dependencies bundled into an ES module call require() for Node's built-ins (esbuild turns
// those into a __require that needs a real `require` in scope), so the bundle creates one.
// __dirname and __filename are defined as a CommonJS module would see them, for the few modules below
// that name them in code the operator never runs.
const banner = [
  '// StreamRoom operator, bundled by operator/scripts/bundle.mjs (esbuild).',
  "import { createRequire as __bundleCreateRequire } from 'node:module';",
  "import { fileURLToPath as __bundleFileURLToPath } from 'node:url';",
  'const require = __bundleCreateRequire(import.meta.url);',
  'const __filename = __bundleFileURLToPath(import.meta.url);',
  "const __dirname = __filename.slice(0, __filename.lastIndexOf('/'));",
].join('\n');

rmSync(outdir, { recursive: true, force: true });
const result = await build({
  entryPoints: [entry],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: optionalExternals,
  banner: { js: banner },
  legalComments: 'none',
  // Smaller, but names are kept: stack traces and logs stay readable without a source map.
  minifyWhitespace: true,
  minifySyntax: true,
  keepNames: true,
  sourcemap: sourcemap ? 'linked' : false,
  sourcesContent: false,
  metafile: true,
  logLevel: 'warning',
});
if (result.errors.length > 0) process.exit(1);

// Everything the bundle still imports at run time must be a Node built-in or one of the optional
// externals above: anything else would need a node_modules the image does not have.
const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
const unexpected = new Set();
for (const out of Object.values(result.metafile.outputs)) {
  for (const imp of out.imports ?? []) {
    if (!imp.external) continue;
    if (builtins.has(imp.path) || optionalExternals.includes(imp.path)) continue;
    unexpected.add(`${imp.path} (${imp.kind})`);
  }
}
if (unexpected.size > 0) {
  console.error(`bundle.mjs: the bundle would still need node_modules for: ${[...unexpected].join(', ')}`);
  process.exit(1);
}
// Every bundled package must be one the operator's production install has (not a dev dependency,
// which the build stage also has in node_modules and an optional require() could pick up).
const strays = new Set();
for (const input of Object.keys(result.metafile.inputs)) {
  const abs = path.resolve(input).split(path.sep).join('/');
  let rel = path.relative(repoRoot, abs).split(path.sep).join('/');
  // (a node_modules that is a symlink out of the repository: its place in package-lock.json)
  if (rel.startsWith('../') && abs.includes('/node_modules/'))
    rel = abs.slice(abs.indexOf('/node_modules/') + 1);
  const m = rel.match(/^(?:.*\/)?node_modules\/(?:@[^/]+\/)?[^/]+/);
  if (m && !production.has(m[0])) strays.add(m[0]);
}
if (strays.size > 0) {
  console.error(
    `bundle.mjs: bundled packages that are not production dependencies of the operator: ${[...strays].join(', ')}`,
  );
  process.exit(1);
}

// A CommonJS module that reads files next to itself (__dirname/__filename) would look for them next to
// the bundle. Allowed only where that code never runs in the operator: pino's worker-thread transports
// (the operator logs to stdout without a transport).
const pathsAllowed = ['node_modules/pino/lib/transport.js', 'node_modules/thread-stream/index.js'];
for (const input of Object.keys(result.metafile.inputs)) {
  if (pathsAllowed.some((p) => input.endsWith(p))) continue;
  if (/\b__(dirname|filename)\b/.test(readFileSync(input, 'utf8'))) {
    console.error(`bundle.mjs: ${input} refers to __dirname or __filename, which the bundle cannot honour`);
    process.exit(1);
  }
}

// The bundle is an ES module in a .js file: a package.json beside it says so wherever it is copied.
const { name, version } = JSON.parse(readFileSync(`${root}package.json`, 'utf8'));
writeFileSync(
  `${outdir}/package.json`,
  `${JSON.stringify({ name, version, private: true, type: 'module', main: 'main.js' }, null, 2)}\n`,
);
writeFileSync(`${root}dist/bundle-meta.json`, JSON.stringify(result.metafile));
if (args.has('--analyze')) console.log(await analyzeMetafile(result.metafile, { verbose: false }));
const mb = (n) => `${(n / 1e6).toFixed(2)} MB`;
const size = statSync(outfile).size;
console.log(
  `bundled dist/main.js into dist/bundle/main.js (${mb(size)}, ${Object.keys(result.metafile.inputs).length} modules)` +
    (sourcemap ? ` + main.js.map (${mb(statSync(`${outfile}.map`).size)})` : '') +
    `; left out (optional, not installed): ${optionalExternals.join(', ') || 'none'}`,
);

/**
 * The package-lock.json locations (node_modules/...) of the operator workspace's production
 * dependencies, transitively: dependencies, optionalDependencies and non-optional peerDependencies,
 * resolved the way Node does (the nearest node_modules upwards).
 */
function productionPackages(lock) {
  const pkgs = lock.packages ?? {};
  const found = new Set();
  const resolve = (name, from) => {
    for (let dir = from; ;) {
      const loc = dir ? `${dir}/node_modules/${name}` : `node_modules/${name}`;
      if (pkgs[loc]) return loc;
      if (!dir) return undefined;
      const i = dir.lastIndexOf('/node_modules/');
      dir = i >= 0 ? dir.slice(0, i) : '';
    }
  };
  const visit = (loc) => {
    const pkg = pkgs[loc];
    const names = [
      ...Object.keys(pkg.dependencies ?? {}),
      ...Object.keys(pkg.optionalDependencies ?? {}),
      ...Object.keys(pkg.peerDependencies ?? {}).filter((n) => !pkg.peerDependenciesMeta?.[n]?.optional),
    ];
    for (const name of names) {
      let dep = resolve(name, loc);
      if (!dep || found.has(dep)) continue;
      found.add(dep);
      if (pkgs[dep].link) dep = pkgs[dep].resolved;
      visit(dep);
    }
  };
  visit('operator');
  return found;
}
