/**
 * scripts/conformance.mjs (`npm run conformance`, issue #22): the parser of docs/CONFORMANCE.md
 * and its checks, on a small table: a good row, a missing test file, a missing test name, a row
 * with neither test nor reason, PENDING with and without --strict.
 */
import t from 'tap';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checkRows,
  parseStatus,
  parseTable,
  parseTests,
  runConformance,
  testNames,
} from '../../scripts/conformance.mjs';

const TEST_FILE = [
  "import t from 'tap';",
  "void t.test('a good test', async () => {});",
  'void t.test(',
  "  'a name on its own line, with \\'quotes\\'',",
  '  async (t) => {',
  '    await t.test(`a nested template`, async () => {});',
  '  },',
  ');',
  "test('a bare test() call', () => {});",
  'void t.test(`skipped ${x}`, async () => {});',
].join('\n');

const TABLE = [
  '# Conformance',
  '',
  'Some prose | with a pipe, not a table row.',
  '',
  '| id | requirement | section | role | status | test |',
  '|---|---|---|---|---|---|',
  "| R-1 | good | §1 | HA | conforms | `test/x.test.ts` › `a good test`; `test/x.test.ts` › `a name on its own line, with 'quotes'` |",
  '| R-2 | file missing | §2 | MN | conforms | `test/nope.test.ts` › `a good test` |',
  '| R-3 | name missing | §3 | CN | conforms | `test/x.test.ts` › `no such test` |',
  '| R-4 | neither | §4 | HA | conforms | — |',
  '| R-5 | reason only | §5 | HA | not applicable: mip6 has no IPsec | — |',
  '| R-6 | deviation without reason | §6 | MN | deliberate deviation | — |',
  '| R-7 | pending | §7 | HA | gap: lead fixing | PENDING |',
  '| R-8 | nested template | §8 | HA | conforms | `test/x.test.ts` › `a nested template` |',
  '| R-9 | too few cells | §9 | HA | conforms |',
  '| R-10 | unknown status | §10 | HA | fine | — |',
  '',
  '| other | table |',
  '|---|---|',
  '| not | checked |',
].join('\n');

void t.test('testNames: string, multi-line, nested and template names; not ${...}', async (t) => {
  t.same(
    [...testNames(TEST_FILE)].sort(),
    [
      'a bare test() call',
      'a good test',
      "a name on its own line, with 'quotes'",
      'a nested template',
    ].sort(),
  );
});

void t.test('parseTable: only the tables with the six columns; short rows reported', async (t) => {
  const { rows, errors } = parseTable(TABLE);
  t.same(
    rows.map((r) => r.id),
    ['R-1', 'R-2', 'R-3', 'R-4', 'R-5', 'R-6', 'R-7', 'R-8', 'R-10'],
  );
  t.equal(rows[0]?.line, 7);
  t.equal(rows[0]?.section, '§1');
  t.same(errors, [{ line: 15, id: 'R-9', message: '5 cells, expected 6' }]);
  t.same(parseStatus('deliberate deviation: UDP instead of IPsec'), {
    kind: 'deliberate deviation',
    reason: 'UDP instead of IPsec',
  });
  t.same(parseStatus('conforms'), { kind: 'conforms', reason: '' });
  t.equal(parseStatus('works').kind, undefined);
  t.same(parseTests('`a.ts` › `x`; `b.ts` › `y`').refs, [
    { file: 'a.ts', name: 'x' },
    { file: 'b.ts', name: 'y' },
  ]);
  t.equal(parseTests('PENDING').pending, true);
});

void t.test('checkRows: one problem per bad row, counts per status', async (t) => {
  const { rows } = parseTable(TABLE);
  const files: Record<string, string> = { 'test/x.test.ts': TEST_FILE };
  const read = (p: string): string | undefined => files[p];
  const r = checkRows(rows, read);
  t.same(
    r.problems.map((p) => [p.id, p.message]),
    [
      ['R-2', 'test file test/nope.test.ts does not exist'],
      ['R-3', 'test/x.test.ts has no test named "no such test"'],
      ['R-4', 'conforms, but no test reference (`file` › `test name`)'],
      ['R-6', 'status "deliberate deviation" without a reason'],
      ['R-10', 'status "fine" is none of: conforms, deliberate deviation, not applicable, gap'],
    ],
  );
  t.same(r.counts, { conforms: 5, 'deliberate deviation': 1, 'not applicable': 1, gap: 1 });
  t.same(r.pending, ['R-7']);

  const strict = checkRows(rows, read, { strict: true });
  t.ok(strict.problems.some((p) => p.id === 'R-7' && /PENDING/.test(p.message)));

  const dup = checkRows([rows[0]!, { ...rows[0]!, line: 99 }], read);
  t.same(
    dup.problems.map((p) => p.message),
    ['id R-1 used twice'],
  );
});

void t.test('runConformance: report lines and exit verdict on files', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mip6-conformance-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'test'));
  writeFileSync(join(dir, 'test', 'x.test.ts'), TEST_FILE);
  const good = TABLE.split('\n')
    .filter((l) => !/R-(2|3|4|6|9|10) /.test(l))
    .join('\n');
  writeFileSync(join(dir, 'good.md'), good);
  writeFileSync(join(dir, 'bad.md'), TABLE);

  const ok = runConformance(join(dir, 'good.md'), dir);
  t.equal(ok.ok, true);
  t.match(ok.lines.join('\n'), /4 requirement rows/);
  t.match(ok.lines.join('\n'), /test PENDING\s+1 \(R-7\)/);
  t.equal(runConformance(join(dir, 'good.md'), dir, { strict: true }).ok, false);

  const bad = runConformance(join(dir, 'bad.md'), dir);
  t.equal(bad.ok, false);
  t.equal(bad.lines.filter((l) => l.startsWith('error:')).length, 6);
  t.match(bad.lines.join('\n'), /bad\.md:8 R-2: test file test\/nope\.test\.ts does not exist/);

  t.equal(runConformance(join(dir, 'missing.md'), dir).ok, false);
  writeFileSync(join(dir, 'empty.md'), '# nothing\n');
  t.equal(runConformance(join(dir, 'empty.md'), dir).ok, false, 'no table at all is an error');
  t.equal(
    checkRows(
      parseTable(
        '| id | requirement | section | role | status | test |\n|---|---|---|---|---|---|\n| A | x | §1 | HA | conforms | `../../etc/passwd` › `x` |',
      ).rows,
      () => undefined,
    ).problems.length,
    1,
  );
});

void t.test('the project’s own docs/CONFORMANCE.md passes --strict', async (t) => {
  // A renamed or deleted test named in the table fails here, in `npm test`, not only in
  // `npm run conformance`.
  const root = join(import.meta.dirname, '..', '..');
  const r = runConformance(join(root, 'docs', 'CONFORMANCE.md'), root, { strict: true });
  t.equal(r.ok, true, r.lines.filter((l) => l.startsWith('error:')).join('\n') || 'no errors');
});
