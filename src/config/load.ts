/**
 * Reads a config file and hands its text to the pure parser. The only file access in config/:
 * unreadable files become ConfigError(file, '(file)', reason) like every other config problem.
 */
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../util/errors.js';
import { parseHaConfig, type HaConfig } from './ha.js';
import { parseCnConfig, parseMnConfig, type CnConfig, type MnConfig } from './mn.js';

export type AnyConfig = HaConfig | MnConfig | CnConfig;

/** Reads `file` as UTF-8; a missing or unreadable file is a ConfigError with the OS reason. */
export async function readConfigText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why =
      e.code === 'ENOENT'
        ? 'no such file'
        : e.code === 'EACCES'
          ? 'permission denied'
          : e.code === 'EISDIR'
            ? 'is a directory, not a file'
            : (e.message ?? String(err));
    throw new ConfigError(file, '(file)', `cannot read the config file: ${why}`);
  }
}

export async function loadHaConfig(file: string): Promise<HaConfig> {
  return parseHaConfig(await readConfigText(file), file);
}

export async function loadMnConfig(file: string): Promise<MnConfig> {
  return parseMnConfig(await readConfigText(file), file);
}

export async function loadCnConfig(file: string): Promise<CnConfig> {
  return parseCnConfig(await readConfigText(file), file);
}
