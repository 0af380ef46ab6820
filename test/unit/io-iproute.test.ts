// iproute.ts: a failing `ip` command rejects with an IoError naming the command and ip's reason.
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { ip, setMtu } from '../../src/io/iproute.js';

let haveIp = true;
try {
  execFileSync('ip', ['-V'], { stdio: 'ignore' });
} catch {
  haveIp = false;
}
const skip = haveIp ? false : 'needs iproute2 (ip)';

void t.test('errors name the command and what failed', { skip }, async (t) => {
  const dev = `nx${process.pid}`;
  await t.rejects(setMtu(dev, 1400), {
    code: 'ERR_IPROUTE',
    message: new RegExp(`\`ip link set dev ${dev} mtu 1400\` failed: .*${dev}`),
  });
});

void t.test('a successful command resolves with its output', { skip }, async (t) => {
  const out = await ip(['-o', 'link', 'show', 'lo']);
  t.match(out, /\blo\b/);
});
