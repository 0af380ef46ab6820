/**
 * The addon's functions are looked up on every packet (TUN write, UDP send, AEAD batches), so
 * the object loadAddon() returns must have V8 fast properties: the module object N-API fills is
 * a dictionary (issue #16: those lookups showed up as generic load stubs in the packet path).
 * Checked with V8's own %HasFastProperties in a child process started with
 * --allow-natives-syntax.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadAddon } from '../../src/io/addon.js';

const ADDON_TS = fileURLToPath(new URL('../../src/io/addon.ts', import.meta.url));

void t.test('loadAddon() gives an object with fast properties, the same functions', (t) => {
  const addon = loadAddon() as unknown as Record<string, unknown>; // the addon is built before the tests
  t.equal(typeof addon['tunWrite'], 'function');
  t.equal(typeof addon['udpSend'], 'function');
  t.equal(typeof addon['aeadSealBatch'], 'function');
  const script = [
    `const { loadAddon } = await import(${JSON.stringify(ADDON_TS)});`,
    'const a = loadAddon();',
    'const fast = (o) => %HasFastProperties(o);',
    'console.log(JSON.stringify({ loaded: fast(a), keys: Object.keys(a).length }));',
  ].join('\n');
  const out = execFileSync(
    process.execPath,
    ['--allow-natives-syntax', '--import', 'tsx', '--input-type=module', '-e', script],
    { encoding: 'utf8', timeout: 60_000 },
  );
  const r = JSON.parse(out.trim().split('\n').at(-1)!) as { loaded: boolean; keys: number };
  t.equal(r.loaded, true, 'fast properties');
  t.equal(r.keys, Object.keys(addon).length, 'every export kept');
  t.end();
});
