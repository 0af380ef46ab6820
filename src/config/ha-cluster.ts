/**
 * [cluster] in ha.toml (issue 18): the home agents of one home prefix share their bindings
 * through etcd. Absent, the home agent runs alone (bindings in memory, or [home] state).
 *
 *   [cluster]
 *   etcd = ["https://10.0.0.1:2379", "https://10.0.0.2:2379", "https://10.0.0.3:2379"]
 *   name = "home1"          # the cluster: several home prefixes can share one etcd
 *   member = "ha1"          # this home agent, unique in the cluster
 *   tls_ca = "etcd-ca.pem"  # etcd's client TLS (https:// endpoints)
 *   tls_cert = "ha1-etcd.pem"
 *   tls_key = "ha1-etcd.key"
 */
import { resolveAgainst } from './common.js';
import type { TableReader } from './reader.js';

export interface HaClusterConfig {
  /** etcd client URLs (http:// or https://, all the same scheme). */
  etcd: string[];
  /** The cluster's name: its keys live under /mip6/<name>/. */
  name: string;
  /** This home agent's name in the cluster. */
  member: string;
  /** CA that signed etcd's server certificates (PEM file); undefined = the system's CAs. */
  tlsCa: string | undefined;
  /** Client certificate and key for etcd's client certificate authentication (PEM files). */
  tlsCert: string | undefined;
  tlsKey: string | undefined;
}

/** A cluster or member name: one etcd key segment. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** Reads [cluster]; undefined when the table is absent. */
export function readCluster(root: TableReader): HaClusterConfig | undefined {
  if (!root.has('cluster')) return undefined;
  const c = root.section('cluster');
  const list = c.optStringOrArray('etcd');
  if (list === undefined || list.length === 0) {
    throw c.error(
      'etcd',
      'required key is missing (etcd client URLs, e.g. ["https://10.0.0.1:2379"])',
    );
  }
  const schemes = new Set<string>();
  const etcd = list.map((raw, i) => {
    const key = Array.isArray(list) && list.length > 1 ? `etcd[${i}]` : 'etcd';
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw c.error(key, `"${raw}" is not a URL (e.g. "https://10.0.0.1:2379")`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw c.error(key, `"${raw}": expected http:// or https://`);
    }
    if (url.port === '' || (url.pathname !== '/' && url.pathname !== '') || url.search !== '') {
      throw c.error(key, `"${raw}": expected scheme://host:port and nothing more`);
    }
    schemes.add(url.protocol);
    return `${url.protocol}//${url.host}`;
  });
  if (schemes.size > 1) {
    throw c.error('etcd', 'mixes http:// and https:// endpoints: use one scheme for all');
  }
  const name = c.optString('name');
  if (name === undefined)
    throw c.error('name', 'required key is missing (the cluster, e.g. "home1")');
  if (!NAME.test(name)) {
    throw c.error('name', `"${name}": expected 1-63 letters, digits, ".", "_" or "-"`);
  }
  const member = c.optString('member');
  if (member === undefined) {
    throw c.error('member', 'required key is missing (this home agent in the cluster, e.g. "ha1")');
  }
  if (!NAME.test(member)) {
    throw c.error('member', `"${member}": expected 1-63 letters, digits, ".", "_" or "-"`);
  }
  const path = (key: string): string | undefined => {
    const p = c.optPath(key);
    return p === undefined ? undefined : resolveAgainst(c.file, p);
  };
  const tlsCa = path('tls_ca');
  const tlsCert = path('tls_cert');
  const tlsKey = path('tls_key');
  const https = schemes.has('https:');
  for (const [key, v] of [
    ['tls_ca', tlsCa],
    ['tls_cert', tlsCert],
    ['tls_key', tlsKey],
  ] as const) {
    if (v !== undefined && !https) throw c.error(key, 'needs https:// endpoints in cluster.etcd');
  }
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw c.error(
      tlsCert === undefined ? 'tls_key' : 'tls_cert',
      `needs ${c.keyPath(tlsCert === undefined ? 'tls_cert' : 'tls_key')} too`,
    );
  }
  c.finish();
  return { etcd, name, member, tlsCa, tlsCert, tlsKey };
}
