/**
 * The commander program. Every subcommand registers itself from its own file in src/cli/;
 * add one import and one `register...(program)` line here per command.
 */
import { Command } from 'commander';
import { VERSION } from '../util/version.js';
import { registerDaemons } from './daemons.js';
import { registerDecode } from './decode.js';
import { registerEnrol } from './enrol.js';
import { registerJoin } from './join.js';
import { registerKeys } from './keys.js';
import { registerService } from './service.js';
import { registerStatus } from './status.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('mip6')
    .description(
      'Userspace Mobile IPv6 overlay VPN: a stable home address that survives every move',
    )
    .version(VERSION)
    .showHelpAfterError();
  registerDaemons(program);
  registerDecode(program);
  registerEnrol(program);
  registerJoin(program);
  registerKeys(program);
  registerService(program);
  registerStatus(program);
  return program;
}
