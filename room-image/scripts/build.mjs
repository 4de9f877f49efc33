// Builds the room server (tsc -> dist/) and the browser client (esbuild -> dist/public/).
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { URL, fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);
const tsc = require.resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
const { bundleClient } = await import('../dist/build/bundle.js');
const out = await bundleClient({ clientDir: `${root}src/client`, outdir: `${root}dist/public` });
console.log(`built dist/server and dist/public (${out.script}, ${out.stylesheet})`);
