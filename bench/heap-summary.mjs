// Where a process's heap goes, from V8 heap snapshots (issue 17: bytes per binding at the HA).
//   node --max-old-space-size=12000 bench/heap-summary.mjs AFTER.heapsnapshot
//     [--before BEFORE.heapsnapshot] [--per N] [--top 40]
// Every node's self size (backing stores of ArrayBuffers included: V8 reports them as native
// nodes) is charged to an owner found on the dominator tree: the nearest dominator that is an
// instance of a named class (not Object, Array, Map, Set, closures, system objects), labelled
// `Class` for the instance's own subtree and `Class.field` for what it holds through a field
// (a Map's table, an array's elements). Prints the labels by bytes (divided by --per N, e.g. the
// number of bindings) and, with --before, the growth from the first snapshot to the second.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: o, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    before: { type: 'string' },
    per: { type: 'string', default: '1' },
    top: { type: 'string', default: '40' },
    /** How many fields deep a label goes below its owner (1: `Owner.field`). */
    depth: { type: 'string', default: '1' },
    /** Prints, for a few nodes of this label, who retains them (edge and holder, 3 levels). */
    explain: { type: 'string' },
  },
});

/** Constructors that are containers, not owners: their bytes go to whoever holds them. */
const GENERIC = new Set([
  'Object',
  'Array',
  'Map',
  'Set',
  'WeakMap',
  'WeakSet',
  'Uint8Array',
  'Uint32Array',
  'Float64Array',
  'ArrayBuffer',
  'Buffer',
  'Promise',
  'Timeout',
  'system / Context',
  '(object properties)',
  '(object elements)',
]);

function summarize(path) {
  const snap = JSON.parse(readFileSync(path, 'utf8'));
  const meta = snap.snapshot.meta;
  const nf = meta.node_fields.length;
  const ef = meta.edge_fields.length;
  const nodeTypes = meta.node_types[0];
  const edgeTypes = meta.edge_types[0];
  const { nodes, edges, strings } = snap;
  const N = nodes.length / nf;
  const [fType, fName, , fSize, fEdges] = ['type', 'name', 'id', 'self_size', 'edge_count'].map(
    (k) => meta.node_fields.indexOf(k),
  );
  const [eType, eName, eTo] = ['type', 'name_or_index', 'to_node'].map((k) =>
    meta.edge_fields.indexOf(k),
  );
  const WEAK = edgeTypes.indexOf('weak');
  const SHORTCUT = edgeTypes.indexOf('shortcut');
  const ELEMENT = edgeTypes.indexOf('element');
  const HIDDEN = edgeTypes.indexOf('hidden');
  const OBJECT = nodeTypes.indexOf('object');
  const firstEdge = new Uint32Array(N + 1);
  for (let i = 0, e = 0; i < N; i++) {
    firstEdge[i] = e;
    e += nodes[i * nf + fEdges] * ef;
  }
  firstEdge[N] = edges.length;
  const strong = (e) => edges[e + eType] !== WEAK && edges[e + eType] !== SHORTCUT;
  // Predecessors (strong edges only), CSR.
  const predCount = new Uint32Array(N + 1);
  for (let e = 0; e < edges.length; e += ef) if (strong(e)) predCount[edges[e + eTo] / nf]++;
  const predStart = new Uint32Array(N + 1);
  for (let i = 0; i < N; i++) predStart[i + 1] = predStart[i] + predCount[i];
  const preds = new Uint32Array(predStart[N]);
  const fill = predStart.slice(0, N);
  for (let i = 0; i < N; i++)
    for (let e = firstEdge[i]; e < firstEdge[i + 1]; e += ef)
      if (strong(e)) preds[fill[edges[e + eTo] / nf]++] = i;
  // Postorder from the root (node 0), iterative.
  const order = new Int32Array(N).fill(-1); // postorder number
  const post = new Uint32Array(N);
  let count = 0;
  const stack = new Uint32Array(N);
  const cursor = new Uint32Array(N);
  const seen = new Uint8Array(N);
  let sp = 0;
  stack[sp++] = 0;
  seen[0] = 1;
  cursor[0] = firstEdge[0];
  while (sp > 0) {
    const v = stack[sp - 1];
    let pushed = false;
    while (cursor[v] < firstEdge[v + 1]) {
      const e = cursor[v];
      cursor[v] += ef;
      if (!strong(e)) continue;
      const w = edges[e + eTo] / nf;
      if (seen[w]) continue;
      seen[w] = 1;
      cursor[w] = firstEdge[w];
      stack[sp++] = w;
      pushed = true;
      break;
    }
    if (!pushed) {
      sp--;
      order[v] = count;
      post[count++] = v;
    }
  }
  // Dominators (Cooper, Harvey, Kennedy), on postorder numbers.
  const idom = new Int32Array(count).fill(-1);
  const root = count - 1;
  idom[root] = root;
  for (let changed = true; changed;) {
    changed = false;
    for (let k = count - 2; k >= 0; k--) {
      const v = post[k];
      let d = -1;
      for (let p = predStart[v]; p < predStart[v + 1]; p++) {
        let a = order[preds[p]];
        if (a < 0 || idom[a] < 0) continue;
        if (d < 0) {
          d = a;
          continue;
        }
        let b = d;
        while (a !== b) {
          while (a < b) a = idom[a];
          while (b < a) b = idom[b];
        }
        d = a;
      }
      if (d >= 0 && idom[k] !== d) {
        idom[k] = d;
        changed = true;
      }
    }
  }
  const nameOf = (v) => strings[nodes[v * nf + fName]];
  const isOwner = (v) => {
    if (nodes[v * nf + fType] !== OBJECT) return false;
    const n = nameOf(v);
    return !GENERIC.has(n) && !n.startsWith('system /') && !n.startsWith('(');
  };
  const edgeName = (e) => {
    const t = edges[e + eType];
    if (t === ELEMENT || t === HIDDEN) return '[]';
    const name = String(strings[edges[e + eName]]);
    return /^\d+$/.test(name) ? '[]' : name; // a hash table's slots
  };
  const edgeLabel = (from, to) => {
    for (let e = firstEdge[from]; e < firstEdge[from + 1]; e += ef)
      if (edges[e + eTo] / nf === to) return edgeName(e);
    // Reached along several paths: name it by its type and (an object) its first fields.
    const fields = [];
    for (let e = firstEdge[to]; e < firstEdge[to + 1] && fields.length < 4; e += ef)
      if (edgeTypes[edges[e + eType]] === 'property') fields.push(edgeName(e));
    return `?${nameOf(to)}{${fields.join(',')}}`;
  };
  // Labels top-down (reverse postorder: a dominator comes before what it dominates).
  const label = new Array(count);
  label[root] = '(root)';
  const bytes = new Map();
  const instances = new Map();
  for (let k = count - 1; k >= 0; k--) {
    const v = post[k];
    if (k !== root) {
      const d = idom[k];
      const dv = post[d];
      if (isOwner(v)) {
        label[k] = nameOf(v);
        instances.set(label[k], (instances.get(label[k]) ?? 0) + 1);
      } else if (isOwner(dv)) label[k] = `${nameOf(dv)}.${edgeLabel(dv, v)}`;
      else if (d === root) label[k] = `(root) ${nodeTypes[nodes[v * nf + fType]]} ${nameOf(v)}`;
      else if (label[d].split('.').length <= Number(o.depth) && !label[d].startsWith('(root)'))
        label[k] = `${label[d]}.${edgeLabel(dv, v)}`;
      else label[k] = label[d];
    }
    bytes.set(label[k], (bytes.get(label[k]) ?? 0) + nodes[v * nf + fSize]);
  }
  if (o.explain !== undefined) {
    const holders = (v) => {
      const out = [];
      for (let p = predStart[v]; p < predStart[v + 1] && out.length < 3; p++) {
        const u = preds[p];
        for (let e = firstEdge[u]; e < firstEdge[u + 1]; e += ef)
          if (edges[e + eTo] / nf === v && strong(e)) {
            out.push({ u, via: `${nameOf(u)} -${edgeName(e)}->` });
            break;
          }
      }
      return out;
    };
    // The label's bytes by who retains them (two levels of first retainers).
    const bySig = new Map();
    for (let k = 0; k < count; k++) {
      if (label[k] !== o.explain) continue;
      const v = post[k];
      const sig = [`${nodeTypes[nodes[v * nf + fType]]} ${nameOf(v)}`];
      let h = holders(v);
      for (let level = 0; level < 3 && h.length > 0; level++) {
        sig.push(h.map((x) => x.via).join(' | '));
        h = holders(h[0].u);
      }
      const key = sig.join('\n    <- ');
      const x = bySig.get(key) ?? { bytes: 0, n: 0 };
      x.bytes += nodes[v * nf + fSize];
      x.n++;
      bySig.set(key, x);
    }
    for (const [sig, x] of [...bySig].sort((p, q) => q[1].bytes - p[1].bytes).slice(0, 12))
      process.stdout.write(`${x.bytes} B in ${x.n}: ${sig}\n`);
  }
  let total = 0;
  for (let k = 0; k < count; k++) total += nodes[post[k] * nf + fSize];
  return { bytes, instances, total };
}

const per = Number(o.per);
const after = summarize(positionals[0]);
const before = o.before === undefined ? undefined : summarize(o.before);
const rows = [...after.bytes].map(([k, b]) => {
  const b0 = before?.bytes.get(k) ?? 0;
  const i = (after.instances.get(k) ?? 0) - (before?.instances.get(k) ?? 0);
  // Labels carry edge names, which can be any string (a Map's keys): one line, 120 characters.
  const label = JSON.stringify(k).slice(1, -1).slice(0, 120);
  return { label, bytes: (b - b0) / per, instances: i / per };
});
if (before !== undefined)
  for (const [k, b] of before.bytes) {
    if (!after.bytes.has(k))
      rows.push({ label: JSON.stringify(k).slice(1, 121), bytes: -b / per, instances: 0 });
  }
rows.sort((x, y) => Math.abs(y.bytes) - Math.abs(x.bytes));
const grown = (after.total - (before?.total ?? 0)) / per;
process.stdout.write(
  `reachable ${(after.total / 1e6).toFixed(1)} MB; growth per unit ${grown.toFixed(1)} B\n`,
);
process.stdout.write('bytes/unit  instances/unit  owner\n');
for (const r of rows.slice(0, Number(o.top))) {
  process.stdout.write(
    `${r.bytes.toFixed(1).padStart(10)}  ${r.instances.toFixed(2).padStart(14)}  ${r.label}\n`,
  );
}
