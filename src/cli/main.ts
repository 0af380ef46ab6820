/**
 * The composition root entry: parses argv, runs the command, turns expected failures into one
 * line on stderr and a non-zero exit code (never a stack trace for user mistakes).
 */
import { CommanderError } from 'commander';
import { Mip6Error } from '../util/errors.js';
import { buildProgram } from './program.js';

/** Prints a one-line error for expected failures; a stack only for real bugs. */
export function reportError(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode;
  if (err instanceof Mip6Error) {
    process.stderr.write(`mip6: ${err.code}: ${err.message}\n`);
    return 1;
  }
  const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
  process.stderr.write(`mip6: internal error: ${text}\n`);
  return 70;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    return reportError(err);
  }
}

process.exitCode = await main(process.argv);
