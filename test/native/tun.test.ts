// The real TUN device through the addon, inside a fresh network namespace per test:
// kernel <-> TUN both ways (ping6 answered by a responder in the child), batched reads,
// close during traffic, and the permission message for an unprivileged user.
import t from 'tap';
import { createNetns, nativeSkipReason, runFixture } from '../helpers/netns.js';

const skip = nativeSkipReason() ?? false;

interface PingResult {
  name: string;
  mtu: number;
  pingCode: number;
  requests: number;
  replies: number;
  link: string;
  counters: { rxBatches: number; txPackets: number };
}

void t.test(
  'ping6 through the TUN is answered by a responder reading and writing it',
  { skip },
  async (t) => {
    const ns = await createNetns(t, 'tp');
    const r = await runFixture(ns, 'tun-child.ts', ['ping', 'mip6t0']);
    t.equal(r.code, 0, r.stderr);
    const res = r.result as PingResult;
    t.equal(res.name, 'mip6t0');
    t.match(res.link, /mtu 1400/, 'MTU set through ip');
    t.match(res.link, /UP/, 'link up');
    t.equal(res.pingCode, 0, `ping succeeded:\n${String((r.result as { ping?: string }).ping)}`);
    t.equal(res.requests, 3, 'three echo requests read from the TUN');
    t.equal(res.replies, 3, 'three echo replies written to the TUN');
    t.equal(res.counters.txPackets, 3);
  },
);

void t.test('packets routed to the TUN are read in batches after a pause', { skip }, async (t) => {
  const ns = await createNetns(t, 'tb');
  const r = await runFixture(ns, 'tun-child.ts', ['batch', 'mip6t1']);
  t.equal(r.code, 0, r.stderr);
  const res = r.result as { got: number; sizes: number[]; headroomOk: boolean };
  t.equal(res.got, 200, 'all 200 datagrams read');
  t.ok(Math.max(...res.sizes) > 1, `batches of more than one packet (${res.sizes.join(',')})`);
  t.ok(Math.max(...res.sizes) <= 32, 'no batch above maxBatch');
  t.ok(res.sizes.length < 200, 'fewer callbacks than packets');
  t.ok(res.headroomOk, 'every packet leaves the configured headroom');
});

void t.test('close during traffic is clean and idempotent', { skip }, async (t) => {
  const ns = await createNetns(t, 'tc');
  const r = await runFixture(ns, 'tun-child.ts', ['close', 'mip6t2']);
  t.equal(r.code, 0, r.stderr);
  const res = r.result as Record<string, unknown>;
  t.ok((res.seenA as number) >= 20, 'device A received traffic before closing itself');
  t.equal(res.afterCloseCallbacks, 0, 'no batch delivered after close() inside the callback');
  t.equal(res.writeAfterClose, 'ERR_CLOSED', 'write after close throws ERR_CLOSED');
  t.equal(res.linkGoneA, true, 'interface A gone');
  t.ok((res.seenB as number) > 0, 'device B received the flood');
  t.equal(res.linkGoneB, true, 'interface B gone');
});

void t.test('without CAP_NET_ADMIN the error says what is needed', { skip }, async (t) => {
  const r = await runFixture(undefined, 'tun-child.ts', ['perm', 'mip6t3'], {
    prefix: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'],
  });
  const res = r.result as { opened: boolean; code?: string; message?: string } | undefined;
  if (res === undefined) {
    t.comment(`cannot run node as nobody here: ${r.stderr.slice(0, 200)}`);
    return;
  }
  t.equal(res.opened, false);
  t.equal(res.code, 'ERR_TUN_PERMISSION');
  t.match(res.message ?? '', /CAP_NET_ADMIN/);
  t.match(res.message ?? '', /setcap cap_net_admin\+ep/);
});
