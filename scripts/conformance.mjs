#!/usr/bin/env node
// `npm run conformance`: checks docs/CONFORMANCE.md (issue #22). Every row of its requirement
// tables must carry either a test reference or a reason:
//   - status `conforms` needs at least one test, written `path` › `test name`;
//   - `deliberate deviation: ...`, `not applicable: ...`, `gap: ...` need the reason after the
//     colon (a test is welcome, e.g. one that pins the deviation);
//   - every referenced test file must exist and contain a t.test('...') / test('...') call with
//     exactly that name;
//   - `PENDING` in the test column (a test still to be written) passes, unless --strict.
// Prints the rows per status, one line per bad row, and exits 1 when any row is bad.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The columns a requirement table has, in this order. */
export const COLUMNS = ['id', 'requirement', 'section', 'role', 'status', 'test'];
export const STATUS_KINDS = ['conforms', 'deliberate deviation', 'not applicable', 'gap'];

function splitRow(line) {
  // `|` inside backticks (none expected) is not special-cased: cells are split on every `|`
  // that is not escaped as `\|`.
  const cells = line
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split(/(?<!\\)\|/)
    .map((c) => c.trim().replace(/\\\|/g, '|'));
  return cells;
}

function isSeparator(cells) {
  return cells.every((c) => /^:?-{3,}:?$/.test(c));
}

/**
 * The requirement rows of a Markdown text: every table whose header row is exactly COLUMNS.
 * Returns { rows: [{ line, id, requirement, section, role, status, test }], errors } where errors
 * are table-shape problems (a row with the wrong number of cells).
 */
export function parseTable(markdown) {
  const lines = markdown.split('\n');
  const rows = [];
  const errors = [];
  let inTable = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (!line.trim().startsWith('|')) {
      inTable = false;
      continue;
    }
    const cells = splitRow(line);
    if (!inTable) {
      const header = cells.map((c) => c.toLowerCase());
      if (header.length === COLUMNS.length && header.every((c, k) => c === COLUMNS[k])) {
        inTable = true;
        i++; // the separator row
      }
      continue;
    }
    if (isSeparator(cells)) continue;
    if (cells.length !== COLUMNS.length) {
      errors.push({
        line: i + 1,
        id: cells[0] ?? '?',
        message: `${cells.length} cells, expected ${COLUMNS.length}`,
      });
      continue;
    }
    const row = { line: i + 1 };
    COLUMNS.forEach((c, k) => (row[c] = cells[k]));
    rows.push(row);
  }
  return { rows, errors };
}

/** `{ kind, reason }` of a status cell; kind is undefined when it is none of STATUS_KINDS. */
export function parseStatus(cell) {
  const m = /^([a-z ]+?)\s*(?::\s*(.*))?$/s.exec(cell.trim());
  if (m === null) return { kind: undefined, reason: '' };
  const kind = STATUS_KINDS.find((k) => k === m[1]);
  return { kind, reason: (m[2] ?? '').trim() };
}

/** The test references of a test cell: `path` › `name`, any number, `;` between them. */
export function parseTests(cell) {
  const refs = [];
  for (const m of cell.matchAll(/`([^`]+)`\s*›\s*`([^`]+)`/g)) {
    refs.push({ file: m[1], name: m[2] });
  }
  return { refs, pending: /\bPENDING\b/.test(cell) };
}

/** Decodes the escapes a test name may use in a JS string literal. */
function unescape(s) {
  return s.replace(/\\(u\{[0-9a-fA-F]+\}|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|.)/g, (_, e) => {
    if (e.startsWith('u{')) return String.fromCodePoint(parseInt(e.slice(2, -1), 16));
    if (e.startsWith('u') || e.startsWith('x'))
      return String.fromCharCode(parseInt(e.slice(1), 16));
    return { n: '\n', t: '\t' }[e] ?? e;
  });
}

/**
 * The names of the tests a source file declares: the first argument of every `t.test(` /
 * `test(` call (also `.test(` on any test object) that is a plain string literal, across line
 * breaks. Template literals count only without `${`.
 */
export function testNames(source) {
  const names = new Set();
  const re = /(?:^|[^\w$])(?:[\w$]+\.)?test\(\s*(['"`])((?:\\.|(?!\1)[^\\])*)\1\s*[,)]/g;
  for (const m of source.matchAll(re)) {
    if (m[1] === '`' && m[2].includes('${')) continue;
    names.add(unescape(m[2]));
  }
  return names;
}

/**
 * Checks the rows. `readFile(path)` returns a test file's text or undefined when missing (paths
 * are relative to the repository). Returns { counts, problems, pending } where counts maps the
 * status kind to its number of rows.
 */
export function checkRows(rows, readFile, { strict = false } = {}) {
  const counts = Object.fromEntries(STATUS_KINDS.map((k) => [k, 0]));
  const problems = [];
  const pending = [];
  const seen = new Set();
  const namesOf = new Map();
  for (const row of rows) {
    const bad = (message) => problems.push({ line: row.line, id: row.id, message });
    if (row.id === '') bad('no id');
    else if (seen.has(row.id)) bad(`id ${row.id} used twice`);
    seen.add(row.id);
    const { kind, reason } = parseStatus(row.status);
    if (kind === undefined) {
      bad(`status "${row.status}" is none of: ${STATUS_KINDS.join(', ')}`);
    } else {
      counts[kind]++;
      if (kind !== 'conforms' && reason === '') bad(`status "${kind}" without a reason`);
    }
    const { refs, pending: isPending } = parseTests(row.test);
    if (isPending) {
      pending.push(row.id);
      if (strict) bad('test PENDING (--strict)');
    }
    if (kind === 'conforms' && refs.length === 0 && !isPending) {
      bad('conforms, but no test reference (`file` › `test name`)');
    }
    const empty = row.test === '' || row.test === '—' || row.test === '-';
    if (refs.length === 0 && !isPending && !empty) {
      bad(`test cell "${row.test}" is not \`file\` › \`test name\`, PENDING or —`);
    }
    for (const ref of refs) {
      if (!namesOf.has(ref.file)) {
        const text = readFile(ref.file);
        namesOf.set(ref.file, text === undefined ? undefined : testNames(text));
      }
      const names = namesOf.get(ref.file);
      if (names === undefined) bad(`test file ${ref.file} does not exist`);
      else if (!names.has(ref.name)) bad(`${ref.file} has no test named "${ref.name}"`);
    }
  }
  return { counts, problems, pending };
}

/** Runs the whole check on a table file; returns the report lines and whether it passed. */
export function runConformance(tablePath, root, { strict = false } = {}) {
  const lines = [];
  if (!existsSync(tablePath)) return { ok: false, lines: [`conformance: no ${tablePath}`] };
  const { rows, errors } = parseTable(readFileSync(tablePath, 'utf8'));
  const readFile = (p) => {
    const full = resolve(root, p);
    if (!full.startsWith(resolve(root)) || !existsSync(full)) return undefined;
    return readFileSync(full, 'utf8');
  };
  const { counts, problems, pending } = checkRows(rows, readFile, { strict });
  const shown = relative(process.cwd(), tablePath) || tablePath;
  const all = [...errors, ...problems].sort((a, b) => a.line - b.line);
  if (rows.length === 0) all.push({ line: 0, id: '-', message: 'no requirement table found' });
  lines.push(`conformance: ${rows.length} requirement rows in ${shown}`);
  for (const k of STATUS_KINDS) lines.push(`  ${k.padEnd(22)} ${counts[k]}`);
  lines.push(
    `  ${'test PENDING'.padEnd(22)} ${pending.length}${pending.length ? ` (${pending.join(', ')})` : ''}`,
  );
  for (const p of all) lines.push(`error: ${shown}:${p.line} ${p.id}: ${p.message}`);
  lines.push(all.length === 0 ? 'conformance: ok' : `conformance: ${all.length} bad row(s)`);
  return { ok: all.length === 0, lines };
}

const invoked =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (invoked) {
  const args = process.argv.slice(2);
  const strict = args.includes('--strict');
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const table = args.find((a) => !a.startsWith('--')) ?? join(root, 'docs', 'CONFORMANCE.md');
  const { ok, lines } = runConformance(table, root, { strict });
  process.stdout.on('error', () => {}); // a closed pipe (| head) is not our failure
  for (const l of lines) (l.startsWith('error') ? process.stderr : process.stdout).write(`${l}\n`);
  process.exitCode = ok ? 0 : 1;
}
