/**
 * `mip6 ha` with [cluster] (issue 18) when etcd cannot be used: one line on stderr naming the
 * config file's [cluster] and the cause, exit status 1, before anything is set up (no TUN, no
 * socket). The real CLI as a child process; etcd "unreachable" is a loopback port nobody
 * listens on.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { freePort } from '../helpers/etcd.js';
import { REPO_ROOT } from '../helpers/netns.js';
import { MAIN, Provisioned } from '../lab/mip6-lab.js';

/** Runs `mip6 ha -c FILE`, bounded; its exit status and stderr. */
function runHa(config: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'ha', '-c', config], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 40_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

const prov = await Provisioned.create();
t.teardown(() => prov.remove());
const ha = await prov.member('ha', 'ha', ['2001:db8:100::/64']);
const config = (name: string, cluster: string): string =>
  prov.write(
    name,
    `control_socket = "${prov.dir}/${name}.sock"
[identity]
private_key = "${ha.key}"
certificate = "${ha.cert}"
authority = "${prov.authorityPub}"
[tun]
name = "mip6clx"
[home]
prefix = "2001:db8:100::/64"
[cluster]
${cluster}
name = "home1"
member = "ha1"
`,
  );

void t.test('etcd that does not answer: one line, exit 1', async (t) => {
  const port = await freePort();
  const file = config('unreachable.toml', `etcd = "http://127.0.0.1:${port}"`);
  const r = await runHa(file);
  t.equal(r.code, 1);
  t.equal(r.stderr.split('\n').filter((l) => l !== '').length, 1, r.stderr);
  t.match(
    r.stderr,
    `ERR_CLUSTER_UNREACHABLE: [cluster] of ${file}: etcd at http://127.0.0.1:${port} does not answer`,
  );
});

void t.test('a TLS file that cannot be read: one line naming it, exit 1', async (t) => {
  const file = config('tls.toml', `etcd = "https://127.0.0.1:2379"\ntls_ca = "missing-ca.pem"`);
  const r = await runHa(file);
  t.equal(r.code, 1);
  t.equal(r.stderr.split('\n').filter((l) => l !== '').length, 1, r.stderr);
  t.match(
    r.stderr,
    `ERR_CLUSTER_TLS: [cluster] of ${file}: cannot read tls_ca ${prov.dir}/missing-ca.pem`,
  );
});
