/**
 * The npm package (issue 19): packed from a scratch copy of this tree (prepack: dist/, the
 * addon prebuilt for linux-x64 and, where the cross tools are, linux-arm64), installed into an
 * empty prefix with `npm install -g` with no compiler reachable (CC/CXX are /bin/false, node's
 * headers hidden) and scripts allowed: npm must find nothing to run. Then the installed `mip6`
 * answers --version and decodes a packet, loads its prebuilt addon, and (as root, with
 * network namespaces) runs the README's Quick start: the laptop registers and pings the home
 * agent. Skips with the reason when npm cannot get the dependencies (no cache, no registry).
 */
import t from 'tap';
import { execFile, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { HaStatus } from '../../src/io/control-protocol.js';
import { nativeSkipReason, REPO_ROOT } from '../helpers/netns.js';
import { LAPTOP_HOA, pingHomeAgent, quickstart, twoHosts } from '../lab/quickstart.js';

const exec = promisify(execFile);
/** What the package is made of: the files `npm pack` may take, and what prepack needs. */
const SOURCES = [
  'package.json',
  'package-lock.json',
  'tsconfig.json',
  'tsconfig.build.json',
  'binding.gyp',
  'README.md',
  'SECURITY.md',
  'bin',
  'src',
  'native',
  'scripts',
  'contrib',
  'keys',
];

function npm(args: string[], cwd: string, env: Record<string, string> = {}) {
  const r = spawnSync('npm', args, {
    cwd,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 300_000,
  });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', error: r.error };
}

const skip = process.platform !== 'linux' ? 'the package ships Linux addons only' : false;

void t.test(
  'npm pack, npm install -g without a compiler, run the installed mip6',
  { skip, timeout: 540_000 },
  async (t) => {
    const work = mkdtempSync(join(tmpdir(), 'mip6-package-'));
    t.teardown(() => rmSync(work, { recursive: true, force: true }));
    const tree = join(work, 'tree');
    for (const f of SOURCES) cpSync(join(REPO_ROOT, f), join(tree, f), { recursive: true });
    symlinkSync(join(REPO_ROOT, 'node_modules'), join(tree, 'node_modules'));

    // prepack as `npm pack` runs it (package.json wires it; its steps are scripts/prepack.mjs).
    const manifest = JSON.parse(readFileSync(join(tree, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
      gypfile?: boolean;
      files?: string[];
    };
    t.equal(manifest.scripts.prepack, 'node scripts/prepack.mjs');
    t.equal(manifest.gypfile, false, 'no implicit node-gyp install script');
    for (const s of ['preinstall', 'install', 'postinstall', 'prepare']) {
      t.notOk(manifest.scripts[s], `no ${s} script`);
    }
    const prepack = npm(['run', 'prepack', '--silent'], tree);
    t.equal(prepack.code, 0, `prepack: ${prepack.stderr}`);
    t.comment(prepack.stdout.trim());
    const packed = npm(['pack', '--ignore-scripts', '--json', '--pack-destination', work], tree);
    t.equal(packed.code, 0, packed.stderr);
    const info = (
      JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[]
    )[0]!;
    const files = info.files.map((f) => f.path);
    // The cluster's etcd client is bundled (package.json bundleDependencies): npm then installs
    // it from the tarball and runs none of its dependencies' install scripts (protobufjs has a
    // postinstall that npm 11 would warn about). Its files are not ours to check below.
    const ours = files.filter((f) => !f.startsWith('node_modules/'));
    t.ok(files.includes('node_modules/etcd3/package.json'), 'the etcd client is bundled');
    t.ok(files.includes('dist/cli/main.js'), 'the compiled JavaScript is in the package');
    t.ok(files.includes('prebuilds/linux-x64/mip6.node'), 'the linux-x64 addon is in it');
    t.ok(
      files.includes('binding.gyp') && files.includes('native/udp.c'),
      'and what builds it from source',
    );
    t.notOk(
      ours.some((f) => /^(test|bench)\//.test(f) || f.startsWith('src/')),
      'no tests, benches or sources',
    );
    t.notOk(
      ours.some((f) => f.endsWith('.map')),
      'no source maps of ours',
    );
    t.comment(
      `${ours.length} files of ours (${files.length} with the bundled etcd client), arm64: ${files.includes('prebuilds/linux-arm64/mip6.node')}`,
    );

    // Install it like a user without a compiler: anything that tried to build would fail.
    const prefix = join(work, 'prefix');
    const noCompiler = { CC: '/bin/false', CXX: '/bin/false', npm_config_nodedir: '/nonexistent' };
    const tgz = join(work, info.filename);
    const args = ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', tgz];
    let install = npm([...args, '--offline'], work, noCompiler);
    if (install.code !== 0 && /ENOTCACHED/.test(install.stderr)) {
      // The npm cache lacks the dependencies' metadata: the registry has them.
      install = npm([...args, '--prefer-offline'], work, noCompiler);
    }
    if (
      install.code !== 0 &&
      /ENOTCACHED|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT/.test(install.stderr)
    ) {
      const why = `npm cannot get the dependencies here: ${install.stderr.trim().split('\n')[0]}`;
      await t.test('install and run the package', { skip: why }, () => undefined);
      return;
    }
    t.equal(install.code, 0, install.stderr);
    t.notMatch(install.stderr, /install-scripts/, 'npm finds no install script to warn about');
    const pkg = join(prefix, 'lib', 'node_modules', 'mip6');
    t.notOk(existsSync(join(pkg, 'build')), 'nothing was compiled');
    const bin = join(prefix, 'bin', 'mip6');

    const version = await exec(bin, ['--version']);
    t.equal(version.stdout.trim(), '0.1.0');
    // A link-local packet with no payload (fe80::1 -> ff02::2).
    const hex =
      '6000000000083b40fe800000000000000000000000000001ff020000000000000000000000000002' +
      '0000000000000000';
    const decoded = await exec(bin, ['decode', hex]);
    t.match(
      decoded.stdout,
      /Internet Protocol Version 6, Src: fe80::1, Dst: ff02::2/,
      'mip6 decode works',
    );

    // The addon the installed package loads: its prebuilt one.
    const probe = `import { addonCandidates, loadAddon } from ${JSON.stringify(join(pkg, 'dist', 'io', 'addon.js'))};
import { existsSync } from 'node:fs';
loadAddon();
console.log(addonCandidates().find((p) => existsSync(p)));`;
    const loaded = await exec(process.execPath, ['--input-type=module', '-e', probe]);
    t.equal(loaded.stdout.trim(), join(pkg, 'prebuilds', 'linux-x64', 'mip6.node'));
    const elsewhere = `import { missingAddonMessage } from ${JSON.stringify(join(pkg, 'dist', 'io', 'addon.js'))};
console.log(missingAddonMessage('linux', 'riscv64')); console.log(missingAddonMessage('darwin', 'arm64'));`;
    const lines = (
      await exec(process.execPath, ['--input-type=module', '-e', elsewhere])
    ).stdout.split('\n');
    t.match(
      lines[0],
      /^no native addon for linux-riscv64: this package ships prebuilt ones for linux-(arm64, linux-)?x64 .*npx node-gyp rebuild/,
    );
    t.match(lines[1], /^no native addon for darwin-arm64: mip6 runs on Linux only/);

    // The binding store's optional better-sqlite3 (issue 20): with no compiler it may be
    // missing; then a [home] state is refused at start with one line saying what to install.
    const store = `import { openSqliteBindingStore, sqliteAvailable } from ${JSON.stringify(join(pkg, 'dist', 'io', 'sqlite-binding-store.js'))};
if (sqliteAvailable()) { console.log('available'); } else {
  try { openSqliteBindingStore(${JSON.stringify(join(work, 'ha.db'))}); console.log('opened?'); }
  catch (err) { console.log(err.code + ': ' + err.message); } }`;
    const sqlite = (
      await exec(process.execPath, ['--input-type=module', '-e', store])
    ).stdout.trim();
    t.comment(`better-sqlite3 in the installed package: ${sqlite.slice(0, 80)}`);
    if (sqlite !== 'available') {
      t.match(
        sqlite,
        /^ERR_STATE_MODULE: \S+ha\.db: \[home\] state needs the SQLite module better-sqlite3 12\.\d+\.\d+ .*install a C\+\+ toolchain/,
        'a [home] state without the module: one line saying what to install',
      );
      t.notMatch(sqlite, /\n/);
    }

    const labSkip = nativeSkipReason();
    if (labSkip !== undefined) {
      t.comment(`Quick start with the installed mip6 skipped: ${labSkip}`);
      return;
    }
    const hosts = await twoHosts(t);
    const q = await quickstart(t, hosts, { mip6: [bin] });
    await q.mn.waitLog((l) => l.event === 'registered', 30_000);
    const st = await q.ha.status<HaStatus>();
    t.match(
      st.bindings,
      [{ homeAddress: LAPTOP_HOA, member: 'laptop' }],
      'registered with the installed mip6',
    );
    t.equal(await pingHomeAgent(hosts, 2), 2, 'and pings the home agent through the tunnel');
  },
);
