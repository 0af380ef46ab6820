/**
 * `mip6 join FILE` (issue 19), on the device: installs the enrolment file `mip6 member add`
 * wrote (src/cli/enrolment-file.ts) into the configuration directory (--dir, else
 * $MIP6_CONFIG_DIR, else /etc/mip6):
 *   check the certificate under the authority it came with, for the role it names -> the
 *   private key: from the file, or the device's own (--key, or DIR/NAME.key) when the member was
 *   added with --pub; it must be the certificate's key -> plan authority.pub, AGENT.pub,
 *   NAME.key (0600), NAME.cert and mn.toml / cn.toml (checked as the daemon will read it) ->
 *   refuse as a whole when any exists with other content (--force replaces) -> write.
 * Prints the command that starts the daemon.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { DSMIPV6_PORT, parseCnConfig, parseMnConfig } from '../config/index.js';
import { certificateToText, verifyCertificate } from '../crypto/certificate.js';
import { readMemberPrivate } from './key-files.js';
import { decodeKey, encodeKey, KeyTag, memberFromPrivate, type KeyPair } from '../crypto/keys.js';
import { initCrypto, lib } from '../crypto/sodium.js';
import { IoError } from '../util/errors.js';
import {
  configDir,
  ensureDir,
  readText,
  tomlString,
  writePlan,
  type PlannedFile,
} from './enrol-files.js';
import { parseEnrolment, type Enrolment } from './enrolment-file.js';
import { AUTHORITY_PUBLIC_FILE, describe } from './keys.js';

export interface JoinOptions {
  dir?: string;
  key?: string;
  force?: boolean;
  controlSocket?: string;
}

export interface JoinResult {
  name: string;
  role: 'mn' | 'cn';
  homeAddress: string;
  agent: string[];
  agentPort: number;
  config: string;
  written: string[];
  carriedPrivateKey: boolean;
}

function memberToml(e: Enrolment, controlSocket: string | undefined): string {
  const what = e.role === 'cn' ? 'correspondent node' : 'mobile node';
  return [
    `# mip6 ${what} "${e.name}", written by \`mip6 join\` (README: Configuration).`,
    ...(controlSocket !== undefined ? [`control_socket = ${tomlString(controlSocket)}`] : []),
    '',
    '[identity]',
    `private_key = ${tomlString(`${e.name}.key`)}`,
    `certificate = ${tomlString(`${e.name}.cert`)}`,
    `authority = ${tomlString(AUTHORITY_PUBLIC_FILE)}`,
    '',
    '[home]',
    `address = ${tomlString(e.homeAddress)}`,
    `prefix_length = ${e.prefixLength}`,
    `agent = [${e.agent.map(tomlString).join(', ')}]`,
    `agent_port = ${e.agentPort}`,
    `agent_address = ${tomlString(e.agentAddress)}`,
    `agent_public_key = ${tomlString(`${e.agentName}.pub`)}`,
    ...(e.role === 'cn'
      ? ['', '[underlay]', `port = ${DSMIPV6_PORT}`, '', '[route_optimization]', 'enabled = true']
      : []),
    '',
  ].join('\n');
}

/** True when `file` exists and holds exactly `key` under `tag` (comments aside). */
function holdsKey(file: string, tag: KeyTag, key: Uint8Array): boolean {
  if (!existsSync(file)) return false;
  try {
    const k = decodeKey(readText(file, 'key'), tag, file);
    return lib().memcmp(k, key);
  } catch {
    return false;
  }
}

export async function joinOverlay(file: string, o: JoinOptions): Promise<JoinResult> {
  await initCrypto();
  const source = resolve(file);
  const e = parseEnrolment(readText(source, 'enrolment file'), file);
  const verdict = verifyCertificate(e.cert, e.authorityKey, Date.now(), [e.role]);
  if (verdict !== 'ok') {
    throw new IoError(
      'ERR_ENROLMENT',
      `${file}: its certificate does not verify under its authority (${verdict})`,
    );
  }
  if (e.cert.name !== e.name) {
    throw new IoError(
      'ERR_ENROLMENT',
      `${file}: the certificate is for "${e.cert.name}", not "${e.name}"`,
    );
  }
  const dir = configDir(o.dir);
  const keyFile = join(dir, `${e.name}.key`);
  let key: KeyPair;
  let keySource: string;
  if (e.privateKeyBytes !== undefined) {
    key = memberFromPrivate(e.privateKeyBytes);
    keySource = file;
  } else if (o.key !== undefined || existsSync(keyFile)) {
    keySource = o.key !== undefined ? resolve(o.key) : keyFile;
    key = readMemberPrivate(keySource);
  } else {
    throw new IoError(
      'ERR_ENROLMENT',
      `${file}: carries no private key (member add --pub): give this device's own with --key FILE ` +
        `(none at ${keyFile})`,
    );
  }
  if (!lib().memcmp(key.publicKey, e.cert.publicKey)) {
    throw new IoError(
      'ERR_ENROLMENT',
      `${keySource}: this private key is not the one the certificate of ${e.name} was issued for`,
    );
  }
  const config = join(dir, `${e.role}.toml`);
  const text = memberToml(e, o.controlSocket);
  (e.role === 'cn' ? parseCnConfig : parseMnConfig)(text, config); // what the daemon will accept
  const files: PlannedFile[] = [];
  const keyTo = (path: string, tag: KeyTag, bytes: Uint8Array, comment: string, mode: number) => {
    if (!holdsKey(path, tag, bytes))
      files.push({ path, text: encodeKey(tag, bytes, [comment]), mode });
  };
  keyTo(
    join(dir, AUTHORITY_PUBLIC_FILE),
    KeyTag.AUTHORITY_PUBLIC,
    e.authorityKey,
    'mip6 overlay authority public key',
    0o644,
  );
  keyTo(
    join(dir, `${e.agentName}.pub`),
    KeyTag.MEMBER_PUBLIC,
    e.agentKey,
    `home agent ${e.agentName}`,
    0o644,
  );
  keyTo(
    keyFile,
    KeyTag.MEMBER_PRIVATE,
    key.privateKey,
    'mip6 member private key: keep secret',
    0o600,
  );
  files.push({
    path: join(dir, `${e.name}.cert`),
    text: certificateToText(e.cert, describe(e.cert)),
    mode: 0o644,
  });
  files.push({ path: config, text, mode: 0o644 });
  ensureDir(dir, 0o700);
  writePlan(files, o.force === true);
  lib().memzero(key.privateKey);
  return {
    name: e.name,
    role: e.role,
    homeAddress: e.homeAddress,
    agent: e.agent,
    agentPort: e.agentPort,
    config,
    written: files.map((f) => f.path),
    carriedPrivateKey: e.privateKeyBytes !== undefined,
  };
}

function out(line: string): void {
  process.stdout.write(line + '\n');
}

export function registerJoin(program: Command): void {
  program
    .command('join')
    .description('install an enrolment file from `mip6 member add` on this device')
    .argument('<file>', 'the enrolment file (NAME.join)')
    .option('--dir <dir>', 'configuration directory (default $MIP6_CONFIG_DIR or /etc/mip6)')
    .option(
      '--key <file>',
      "this device's private key, when the enrolment carries none (member add --pub)",
    )
    .option(
      '--control-socket <path>',
      'control socket of the daemon (default /run/mip6/<role>.sock)',
    )
    .option('--force', 'overwrite existing files')
    .action(async (file: string, o: JoinOptions) => {
      const r = await joinOverlay(file, o);
      out(
        `joined as ${r.name} (${r.role}): home address ${r.homeAddress}, home agent ${r.agent.join(', ')} port ${r.agentPort}`,
      );
      for (const f of r.written) out(`  wrote ${f}`);
      out(`start it:     mip6 ${r.role} -c ${r.config}`);
      out(`as a service: mip6 service install ${r.role}`);
      if (r.carriedPrivateKey) out(`then delete ${file}: it holds this device's private key`);
    });
}
