// Memory of a node process after full garbage collections, through its inspector (the process
// runs with --inspect=127.0.0.1:PORT). Used by bench/ha-scale.ts, in the daemon's namespace:
//   node --experimental-websocket bench/inspector-memory.mjs PORT [SNAPSHOT]
// Prints process.memoryUsage() of the target as one JSON line; with SNAPSHOT, then writes a heap
// snapshot of it to that file (read by bench/heap-summary.mjs).
import { createWriteStream } from 'node:fs';

const port = Number(process.argv[2]);
const snapshot = process.argv[3];
const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
const waiting = new Map();
let lastId = 0;
const file = snapshot === undefined ? undefined : createWriteStream(snapshot);
ws.onmessage = (e) => {
  const m = JSON.parse(String(e.data));
  if (m.method === 'HeapProfiler.addHeapSnapshotChunk') file?.write(m.params.chunk);
  waiting.get(m.id)?.(m);
  waiting.delete(m.id);
};
await new Promise((resolve, reject) => {
  ws.onopen = resolve;
  ws.onerror = reject;
});
const call = (method, params = {}) =>
  new Promise((resolve) => {
    const id = ++lastId;
    waiting.set(id, resolve);
    ws.send(JSON.stringify({ id, method, params }));
  });
const timer = setTimeout(() => process.exit(2), 300_000);
await call('HeapProfiler.collectGarbage');
await call('HeapProfiler.collectGarbage');
const r = await call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())' });
process.stdout.write(`${r.result.result.value}\n`);
if (file !== undefined) {
  await call('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
  await new Promise((resolve) => file.end(resolve));
}
clearTimeout(timer);
ws.close();
