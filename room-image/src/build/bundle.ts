/**
 * Bundles the browser client with esbuild into content-hashed files and writes index.html that
 * references them. Used by scripts/build.mjs and by the tests (which bundle into a temp dir).
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as esbuild from 'esbuild';

export interface BundleOptions {
  /** room-image/src/client */
  clientDir: string;
  /** Output directory (emptied first), e.g. room-image/dist/public */
  outdir: string;
  minify?: boolean;
}

export interface BundleResult {
  script: string;
  stylesheet: string;
}

export async function bundleClient(opts: BundleOptions): Promise<BundleResult> {
  await rm(opts.outdir, { recursive: true, force: true });
  await mkdir(opts.outdir, { recursive: true });
  const result = await esbuild.build({
    entryPoints: { app: path.join(opts.clientDir, 'main.ts'), style: path.join(opts.clientDir, 'style.css') },
    outdir: opts.outdir,
    entryNames: '[name]-[hash]',
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome109', 'firefox115', 'safari15'],
    minify: opts.minify ?? true,
    sourcemap: 'linked',
    metafile: true,
    legalComments: 'linked',
    // simple-peer (via readable-stream) expects Node's Buffer, process and global.
    inject: [path.join(opts.clientDir, 'node-shims.ts')],
    define: { global: 'globalThis', 'process.env.NODE_DEBUG': 'false' },
    logLevel: 'silent',
  });
  let script: string | undefined;
  let stylesheet: string | undefined;
  for (const [file, out] of Object.entries(result.metafile.outputs)) {
    if (!out.entryPoint) continue;
    const name = path.basename(file);
    if (name.startsWith('app-') && name.endsWith('.js')) script = name;
    if (name.startsWith('style-') && name.endsWith('.css')) stylesheet = name;
  }
  if (!script || !stylesheet) throw new Error('esbuild did not produce the expected app/style outputs');
  const template = await readFile(path.join(opts.clientDir, 'index.html'), 'utf8');
  const html = template.replaceAll('%SCRIPT%', script).replaceAll('%STYLESHEET%', stylesheet);
  await writeFile(path.join(opts.outdir, 'index.html'), html);
  return { script, stylesheet };
}
