// Helper process for lab.test.ts: builds a lab, prints its tag, then dies the way argv[2] says
// ("uncaught": an uncaught exception; "signal": waits for SIGTERM). The lab's exit hooks must
// remove the namespaces either way.
import { createLab } from './lab.js';

const mode = process.argv[2];
const lab = await createLab({ network: 'lte' });
const child = lab.spawn('ha', 'sleep', ['30']);
process.stdout.write(`tag ${lab.tag} child ${child.pid ?? 0}\n`);
if (mode === 'uncaught') {
  setTimeout(() => {
    throw new Error('deliberate crash for the lab cleanup test');
  }, 10);
} else {
  setInterval(() => undefined, 1000); // wait for the signal
}
