import t from 'tap';
import { isLogLevel, Logger, type LogFormat, type LogLevel } from '../../src/util/log.js';
import { IoError } from '../../src/util/errors.js';

const T0 = Date.UTC(2026, 10, 29, 12, 0, 0, 0);

function make(level: LogLevel = 'info', format: LogFormat = 'text') {
  const lines: string[] = [];
  let now = T0;
  const log = new Logger({
    sink: { write: (s: string) => lines.push(s) },
    level,
    format,
    clock: () => now,
  });
  return { lines, log, advance: (ms: number) => (now += ms) };
}

void t.test('text format: one line per event with key=value fields', async (t) => {
  const { lines, log, advance } = make();
  log.info('registration', {
    hoa: '2001:db8:100::10',
    locator: '198.51.100.7:4191',
    status: 'accepted',
  });
  advance(1234);
  log.warn('drop', { reason: 'bad tag', count: 3, nat: true, missing: undefined, none: null });
  t.same(lines, [
    '2026-11-29T12:00:00.000Z info registration hoa=2001:db8:100::10 locator=198.51.100.7:4191 status=accepted\n',
    '2026-11-29T12:00:01.234Z warn drop reason="bad tag" count=3 nat=true none=-\n',
  ]);
});

void t.test('levels filter, setLevel changes the threshold', async (t) => {
  const { lines, log } = make('warn');
  log.debug('a');
  log.info('b');
  log.warn('c');
  log.error('d');
  t.equal(lines.length, 2);
  t.match(lines[0], / warn c\n$/);
  t.match(lines[1], / error d\n$/);
  t.notOk(log.enabled('info'));
  log.setLevel('debug');
  t.ok(log.enabled('debug'));
  log.debug('e');
  t.match(lines[2], / debug e\n$/);
  t.ok(isLogLevel('warn'));
  t.notOk(isLogLevel('verbose'));
});

void t.test('json format: one parseable object per line', async (t) => {
  const { lines, log } = make('debug', 'json');
  const err = new IoError('ERR_TUN', 'cannot open /dev/net/tun');
  log.error('tun', { err, n: 5n, ratio: 0.5, text: 'line\nbreak', level: 'ignored' });
  t.equal(lines.length, 1);
  const line = lines[0] ?? '';
  t.ok(line.endsWith('\n'));
  t.equal(line.indexOf('\n'), line.length - 1, 'exactly one line');
  t.same(JSON.parse(line), {
    time: '2026-11-29T12:00:00.000Z',
    level: 'error',
    event: 'tun',
    err: 'ERR_TUN: cannot open /dev/net/tun',
    n: '5',
    ratio: 0.5,
    text: 'line\nbreak',
  });
});

void t.test('text format quotes values that would break the line', async (t) => {
  const { lines, log } = make();
  log.info('x', { a: 'two words', b: 'k=v', c: 'new\nline', d: '', e: new Error('plain') });
  t.equal(
    lines[0],
    '2026-11-29T12:00:00.000Z info x a="two words" b="k=v" c="new\\nline" d="" e=plain\n',
  );
  t.equal((lines[0] ?? '').split('\n').length, 2, 'still one line');
});

void t.test('child loggers add fields; silent logger writes nothing', async (t) => {
  const { lines, log } = make();
  const child = log.child({ role: 'ha' });
  child.info('start', { port: 4191 });
  t.equal(lines[0], '2026-11-29T12:00:00.000Z info start role=ha port=4191\n');
  const s = Logger.silent();
  s.error('nothing');
  t.notOk(s.enabled('error'));
});
