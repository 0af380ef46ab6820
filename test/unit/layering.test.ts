/**
 * The layering of src/ (../shared/STYLE.md "Dependency direction", DESIGN.md §6), checked on
 * every import of every source file, so a module that imports against the direction fails the
 * build:
 *   util     <- everything
 *   wire     -> util
 *   crypto   -> wire, util (and libsodium; node:crypto for its primitives)
 *   protocol -> wire, util; crypto for types only
 *   config   -> wire, util
 *   io       -> util, wire (codecs it writes, e.g. pcap), node:*, the addon, etcd3 (the cluster)
 *   roles    -> protocol, wire, crypto, config, util; io for types only
 *   cli      -> anything (the composition root, the only one that builds real I/O)
 * and src/ never imports test/ or bench/. Also: time and randomness enter the cores only as
 * injected sources: Date.now, Math.random and timers appear only in src/io (the clock), src/cli
 * (the composition root) and the two default sources in src/util (wall-clock.ts,
 * random-source.ts).
 */
import t from 'tap';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');

type Layer = 'util' | 'wire' | 'crypto' | 'protocol' | 'config' | 'io' | 'roles' | 'cli';
const ALLOWED: Record<Layer, { value: Layer[]; typeOnly: Layer[]; external: RegExp }> = {
  util: { value: ['util'], typeOnly: [], external: /^$/ },
  wire: { value: ['wire', 'util'], typeOnly: [], external: /^$/ },
  crypto: {
    value: ['crypto', 'wire', 'util'],
    typeOnly: [],
    external: /^(libsodium-wrappers|node:crypto)$/,
  },
  protocol: { value: ['protocol', 'wire', 'util'], typeOnly: ['crypto'], external: /^$/ },
  config: { value: ['config', 'wire', 'util'], typeOnly: [], external: /^(smol-toml|node:.*)$/ },
  io: { value: ['io', 'wire', 'util'], typeOnly: [], external: /^(node:.*|etcd3)$/ },
  roles: {
    value: ['roles', 'protocol', 'wire', 'crypto', 'config', 'util'],
    typeOnly: ['io'],
    external: /^$/,
  },
  cli: {
    value: ['cli', 'roles', 'protocol', 'wire', 'crypto', 'config', 'io', 'util'],
    typeOnly: [],
    external: /.*/,
  },
};
/** Files allowed to read time or randomness directly, or to arm timers. */
const SOURCES_ALLOWED = /^(io\/|cli\/|util\/wall-clock\.ts$|util\/random-source\.ts$)/;

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
  });
}

interface Import {
  spec: string;
  typeOnly: boolean;
  line: number;
}

/** Static imports and re-exports (`import ... from`, `export ... from`), and dynamic import(). */
function imports(text: string): Import[] {
  const out: Import[] = [];
  const re =
    /(^|\n)\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const line = text.slice(0, m.index).split('\n').length + (m[1] === '\n' ? 1 : 0);
    if (m[6] !== undefined) {
      out.push({ spec: m[6], typeOnly: false, line });
      continue;
    }
    const clause = m[4] ?? '';
    // `import { type A, type B }` is type-only too (verbatimModuleSyntax erases it).
    const allTypes =
      /^\{[^}]*\}$/.test(clause.trim()) &&
      clause
        .trim()
        .slice(1, -1)
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0)
        .every((s) => s.startsWith('type '));
    out.push({ spec: m[5]!, typeOnly: m[3] !== undefined || allTypes, line });
  }
  return out;
}

function layerOf(file: string): Layer {
  return relative(SRC, file).split('/')[0] as Layer;
}

const files = walk(SRC);

void t.test('every import follows the dependency direction', (t) => {
  const violations: string[] = [];
  let checked = 0;
  for (const file of files) {
    const from = layerOf(file);
    const rule = ALLOWED[from];
    if (rule === undefined) {
      violations.push(`${relative(SRC, file)}: not in a known layer`);
      continue;
    }
    for (const imp of imports(readFileSync(file, 'utf8'))) {
      checked++;
      const where = `${relative(SRC, file)}:${imp.line} imports ${imp.spec}`;
      if (imp.spec.startsWith('.')) {
        const target = resolve(dirname(file), imp.spec);
        const rel = relative(SRC, target);
        if (rel.startsWith('..')) {
          violations.push(`${where}: outside src/`);
          continue;
        }
        const to = rel.split('/')[0] as Layer;
        if (rule.value.includes(to)) continue;
        if (imp.typeOnly && rule.typeOnly.includes(to)) continue;
        violations.push(`${where}: ${from} may not import ${imp.typeOnly ? 'types of ' : ''}${to}`);
      } else if (!rule.external.test(imp.spec)) {
        violations.push(`${where}: ${from} may not depend on ${imp.spec}`);
      }
    }
  }
  t.ok(checked > 300, `${checked} imports in ${files.length} files checked`);
  t.same(violations, [], 'no import against the direction');
  t.end();
});

void t.test('time and randomness come from injected sources only', (t) => {
  const violations: string[] = [];
  for (const file of files) {
    const rel = relative(SRC, file);
    if (SOURCES_ALLOWED.test(rel)) continue;
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        const code = line.replace(/\/\*.*?\*\//g, '').replace(/\/\/.*$/, '');
        if (/^\s*(\*|\/\*)/.test(code)) return; // inside or at the start of a block comment
        if (/\b(Date\.now|Math\.random|setTimeout|setInterval|setImmediate)\b/.test(code)) {
          violations.push(`${rel}:${i + 1}: ${line.trim()}`);
        }
      });
  }
  t.same(violations, [], 'no Date.now, Math.random or timers outside io/, cli/ and util sources');
  t.end();
});

void t.test('the checker itself sees violations (a file that breaks every rule)', (t) => {
  const found = imports(
    [
      "import { x } from '../io/udp.js';",
      "import type { Y } from '../io/types.js';",
      "import { type A, type B } from './z.js';",
      "export { q } from '../roles/common.js';",
      "const m = await import('../cli/main.js');",
    ].join('\n'),
  );
  t.same(
    found.map((f) => [f.spec, f.typeOnly]),
    [
      ['../io/udp.js', false],
      ['../io/types.js', true],
      ['./z.js', true],
      ['../roles/common.js', false],
      ['../cli/main.js', false],
    ],
  );
  t.end();
});
