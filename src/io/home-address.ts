/**
 * Where the mobile node's home address lives (RFC 6275 §11.5.4): on the TUN while away (every
 * packet from it is reverse-tunneled), on the physical home link while at home (plain IPv6, no
 * tunnel). Each transition is one `ip -force -batch -` run, so a half-applied state is not left
 * behind by one failing line (e.g. the home link's address already flushed when it went down).
 *
 * enter(link): HoA off the TUN; HoA/prefix on the link (nodad: the HA still defends it by proxy
 *   ND until our deregistration BU reaches it); a default route via the HA's home address when
 *   the link gave us none (a real home link's Router Advertisement normally does).
 * announce(link): after the deregistration BA, unsolicited NAs for the HoA (RFC 6275 §11.5.4).
 * leave(link): that default route and the HoA off the link; HoA back on the TUN.
 */
import { execFile } from 'node:child_process';
import { IoError } from '../util/errors.js';
import { advertiseNeighbor } from './ndisc.js';

export interface HomeAddressOptions {
  tunName: string;
  homeAddress: string;
  prefixLength: number;
  /** The HA's address on the home link: next hop of the default route at home. */
  homeAgentAddress: string;
}

/** Metric of the default route we add at home (above a Router Advertisement's 1024). */
const HOME_DEFAULT_METRIC = 2048;

function batch(lines: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile('ip', ['-force', '-batch', '-'], { timeout: 10_000 }, (err, _o, e) => {
      // -force runs every line; errors of lines that have nothing to undo are expected.
      if (err !== null && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new IoError('ERR_IPROUTE', 'iproute2 is not installed (apt-get install iproute2)'));
        return;
      }
      void e;
      resolve();
    });
    child.stdin?.end(lines.join('\n') + '\n');
  });
}

export class KernelHomeAddress {
  readonly #o: HomeAddressOptions;
  #cancelAnnounce: (() => void) | undefined;

  constructor(opts: HomeAddressOptions) {
    this.#o = opts;
  }

  async enter(link: string): Promise<void> {
    const o = this.#o;
    const cidr = `${o.homeAddress}/${o.prefixLength}`;
    await batch([
      `addr del ${cidr} dev ${o.tunName}`,
      `addr replace ${cidr} dev ${link} nodad`,
      `route add ::/0 via ${o.homeAgentAddress} dev ${link} metric ${HOME_DEFAULT_METRIC}`,
    ]);
  }

  /** After the deregistration BA: unsolicited NAs so the link's hosts switch back to us. */
  announce(link: string): void {
    this.#cancelAnnounce?.();
    this.#cancelAnnounce = advertiseNeighbor(link, this.#o.homeAddress);
  }

  async leave(link: string): Promise<void> {
    this.#cancelAnnounce?.();
    this.#cancelAnnounce = undefined;
    const o = this.#o;
    const cidr = `${o.homeAddress}/${o.prefixLength}`;
    await batch([
      `route del ::/0 via ${o.homeAgentAddress} dev ${link} metric ${HOME_DEFAULT_METRIC}`,
      `addr del ${cidr} dev ${link}`,
      `addr replace ${cidr} dev ${o.tunName} nodad`,
    ]);
  }
}
