// Builds the JavaScript login-conflict resolver into a WebAssembly component
// with componentize-js's JavaScript API (the `jco componentize` CLI cannot
// read the WIT folder here). Usage: node build.mjs OUT.wasm
import { componentize } from '@bytecodealliance/componentize-js';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out || process.argv.length !== 3) {
  console.error('usage: node build.mjs OUT.wasm');
  process.exit(64);
}

const { component } = await componentize({
  sourcePath: resolve(here, 'src/resolver.js'),
  witPath: resolve(here, '../../wit/0.2.0'),
  worldName: 'import-and-event-hook',
  // Every optional engine feature off: no WASI at all (no stdio, random,
  // clocks, outgoing HTTP or fetch event). The component imports only
  // hookbox's own interfaces. (`'all'` is not accepted by the API.)
  disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
});

const target = resolve(process.cwd(), out);
await mkdir(dirname(target), { recursive: true });
await writeFile(target, component);
console.log(`built ${target} (${component.byteLength} bytes)`);
