/**
 * `mip6 decode`: dissects IPv6 / Mobile IPv6 packets given as hex (arguments, or stdin one
 * packet per line) or read from a pcap file (`--pcap FILE`, LINKTYPE_RAW or LINKTYPE_IPV6).
 * Text output by default, `--json` for one JSON object per line. A malformed packet prints
 * its WireError code and byte offset on stderr and makes the exit status 1. An inner IPv4
 * packet (an RFC 5555 IPv4 home address's traffic in a `--pcap` capture) shows its header.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { IoError, WireError } from '../util/errors.js';
import { dissectToJson, dissectToText } from '../wire/dissect.js';
import { fromHex } from '../wire/hex.js';
import { ipv4Summary } from '../wire/ipv4.js';
import { LINKTYPE_IPV6, LINKTYPE_RAW, decodePcap } from '../wire/pcap.js';

interface DecodeFlags {
  pcap?: string;
  json?: boolean;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function readFile(path: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new IoError('ERR_READ', `cannot read ${path}: ${e.message}`);
  }
}

/** Runs the command; returns the number of packets that failed to decode. */
export async function runDecode(hexArgs: string[], flags: DecodeFlags): Promise<number> {
  const packets: { label: string; data: Uint8Array | WireError }[] = [];
  if (flags.pcap !== undefined) {
    const file = decodePcap(readFile(flags.pcap));
    if (file.linktype !== LINKTYPE_RAW && file.linktype !== LINKTYPE_IPV6) {
      throw new WireError(
        'ERR_UNSUPPORTED',
        `pcap link type ${file.linktype} (need 101 RAW or 229 IPV6)`,
        20,
      );
    }
    file.records.forEach((r, i) => packets.push({ label: `packet ${i + 1}`, data: r.data }));
  } else {
    const lines = hexArgs.length > 0 ? hexArgs : (await readStdin()).split('\n');
    let n = 0;
    for (const line of lines) {
      if (line.trim() === '' || line.trim().startsWith('#')) continue;
      n++;
      try {
        packets.push({ label: `packet ${n}`, data: fromHex(line) });
      } catch (err) {
        if (!(err instanceof WireError)) throw err;
        packets.push({ label: `packet ${n}`, data: err });
      }
    }
  }
  let failures = 0;
  for (const p of packets) {
    try {
      if (p.data instanceof WireError) throw p.data;
      const v4 = ipv4Summary(p.data);
      if (v4 !== undefined) {
        process.stdout.write(
          flags.json === true
            ? `${JSON.stringify({ ipv4: v4 })}\n`
            : `${p.label} (${p.data.length} bytes)\nInternet Protocol Version 4\n` +
                `    Source: ${v4.source}\n    Destination: ${v4.destination}\n` +
                `    Protocol: ${v4.protocol}\n    Total Length: ${v4.totalLength}\n` +
                `    Time to Live: ${v4.ttl}\n\n`,
        );
        continue;
      }
      if (flags.json === true) {
        process.stdout.write(`${JSON.stringify(dissectToJson(p.data))}\n`);
      } else {
        process.stdout.write(`${p.label} (${p.data.length} bytes)\n${dissectToText(p.data)}\n\n`);
      }
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      failures++;
      if (flags.json === true) {
        process.stdout.write(
          `${JSON.stringify({ error: { code: err.code, offset: err.offset, message: err.message } })}\n`,
        );
      }
      process.stderr.write(
        `mip6: ${p.label}: ${err.code} at byte offset ${err.offset}: ${err.message}\n`,
      );
    }
  }
  return failures;
}

export function registerDecode(program: Command): void {
  program
    .command('decode')
    .description(
      'dissect IPv6/MIPv6 packets given as hex (arguments or stdin, one per line) or a pcap file',
    )
    .argument('[hex...]', 'packets as hex strings')
    .option('--pcap <file>', 'read packets from a pcap file (LINKTYPE_RAW or LINKTYPE_IPV6)')
    .option('--json', 'one JSON object per packet')
    .action(async (hex: string[], flags: DecodeFlags) => {
      const failures = await runDecode(hex, flags);
      if (failures > 0) process.exitCode = 1;
    });
}
