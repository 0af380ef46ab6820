#!/usr/bin/env node
// Smoke test of a built addon (prepack runs it on every prebuild it ships, under qemu-user for
// another CPU): `node scripts/addon-smoke.cjs PATH/mip6.node` loads it, checks its functions and
// seals and opens one channel data message through it, so the OpenSSL symbols it takes from
// node resolve. Prints "ok PLATFORM-ARCH" and exits 0, or one line and exit 1. CommonJS and no
// dependencies: it runs under a bare node of any architecture.
'use strict';
const path = require('node:path');

function fail(why) {
  process.stderr.write(`addon smoke test: ${why}\n`);
  process.exit(1);
}

const file = process.argv[2];
if (!file) fail('usage: addon-smoke.cjs PATH/mip6.node');
let addon;
try {
  addon = require(path.resolve(file));
} catch (err) {
  fail(`cannot load ${file}: ${err.message}`);
}
for (const f of ['tunOpen', 'udpOpen', 'udpSend', 'aeadSealBatch', 'aeadOpenBatch']) {
  if (typeof addon[f] !== 'function') fail(`${file} lacks ${f}()`);
}
// One data message: header 16 (type 4, counter 1) | plaintext | tag 16 (native/aead.c).
const HEADER = 16;
const TAG = 16;
const text = Buffer.from('mip6 prebuilt addon');
const buf = new Uint8Array(HEADER + text.length + TAG);
buf[0] = 4;
buf[15] = 1;
buf.set(text, HEADER);
const key = new Uint8Array(32).fill(7);
addon.aeadSealBatch(key, buf, Uint32Array.of(0), Uint32Array.of(text.length), 1);
if (Buffer.from(buf.subarray(HEADER, HEADER + text.length)).equals(text))
  fail('seal left the text');
const results = new Uint8Array(1);
addon.aeadOpenBatch(key, buf, Uint32Array.of(0), Uint32Array.of(buf.length), 1, results);
if (results[0] !== 1) fail('the tag of its own message did not verify');
if (!Buffer.from(buf.subarray(HEADER, HEADER + text.length)).equals(text)) fail('open garbled it');
process.stdout.write(`ok ${process.platform}-${process.arch}\n`);
