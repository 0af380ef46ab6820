/**
 * Captive-portal detection for the mobile node ([movement] portal_probe, issue #15): when no
 * port of the home agent answers, one HTTP GET of a URL that answers 204 on the open internet,
 * sent outside the tunnel: curl bound to the care-of address's interface (SO_BINDTODEVICE,
 * which needs CAP_NET_RAW: the route lookup is then limited to that interface, so the full
 * tunnel's table, whose routes lead into the TUN, cannot match and the visited network's own
 * routes are used). 204: no portal; a redirect or any other answer: a portal (its status and
 * where it redirects to are reported); no answer at all: not a portal, just no way out.
 */
import { execFile } from 'node:child_process';
import { networkInterfaces } from 'node:os';

/** The interface holding `address`, if any. */
export function interfaceOf(address: string): string | undefined {
  for (const [dev, infos] of Object.entries(networkInterfaces())) {
    if (infos?.some((i) => i.address === address)) return dev;
  }
  return undefined;
}

/**
 * Probes `url` out of the interface of `localAddress`: a description of the portal, or
 * undefined when there is none (204, or no answer).
 */
export function probeCaptivePortal(
  url: string,
  localAddress: string,
  timeoutS = 3,
): Promise<string | undefined> {
  const dev = interfaceOf(localAddress);
  if (dev === undefined) return Promise.resolve(undefined);
  // --globoff: the brackets of an IPv6 literal are no URL pattern.
  const args = ['-s', '-g', '-o', '/dev/null', '--interface', dev, '--max-time', String(timeoutS)];
  args.push('-w', '%{http_code} %{redirect_url}', url);
  return new Promise((resolve) => {
    execFile('curl', args, { timeout: (timeoutS + 2) * 1000 }, (err, stdout) => {
      if (err !== null) {
        resolve(undefined); // no answer (or no curl): nothing to report as a portal
        return;
      }
      const [code = '', redirect = ''] = stdout.trim().split(' ');
      if (code === '204' || code === '000') {
        resolve(undefined);
        return;
      }
      resolve(`HTTP ${code} from ${url}${redirect !== '' ? ` (redirect to ${redirect})` : ''}`);
    });
  });
}
