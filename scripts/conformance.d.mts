// Types of scripts/conformance.mjs, for test/unit/conformance-script.test.ts.
export interface Row {
  line: number;
  id: string;
  requirement: string;
  section: string;
  role: string;
  status: string;
  test: string;
}
export interface Problem {
  line: number;
  id: string;
  message: string;
}
export type StatusKind = 'conforms' | 'deliberate deviation' | 'not applicable' | 'gap';
export const COLUMNS: readonly string[];
export const STATUS_KINDS: readonly StatusKind[];
export function parseTable(markdown: string): { rows: Row[]; errors: Problem[] };
export function parseStatus(cell: string): { kind: StatusKind | undefined; reason: string };
export function parseTests(cell: string): {
  refs: { file: string; name: string }[];
  pending: boolean;
};
export function testNames(source: string): Set<string>;
export function checkRows(
  rows: Row[],
  readFile: (path: string) => string | undefined,
  options?: { strict?: boolean },
): { counts: Record<StatusKind, number>; problems: Problem[]; pending: string[] };
export function runConformance(
  tablePath: string,
  root: string,
  options?: { strict?: boolean },
): { ok: boolean; lines: string[] };
