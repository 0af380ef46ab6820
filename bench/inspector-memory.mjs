// Memory of a node process after full garbage collections, through its inspector (the process
// runs with --inspect=127.0.0.1:PORT). Used by bench/ha-scale.ts, in the daemon's namespace:
//   node --experimental-websocket bench/inspector-memory.mjs PORT
// Prints process.memoryUsage() of the target as one JSON line.
const port = Number(process.argv[2]);
const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
const waiting = new Map();
let lastId = 0;
ws.onmessage = (e) => {
  const m = JSON.parse(String(e.data));
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
const timer = setTimeout(() => process.exit(2), 60_000);
await call('HeapProfiler.collectGarbage');
await call('HeapProfiler.collectGarbage');
const r = await call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())' });
process.stdout.write(`${r.result.result.value}\n`);
clearTimeout(timer);
ws.close();
