/**
 * The one real-time wait of the tests that run real processes (test/lab, test/native) and of
 * bench/ and the demo. Simulations do not use it: they run on the fake clock (`World.until`).
 */

/**
 * Polls `check` every `intervalMs` until it holds, and resolves with the milliseconds that took.
 * A check that throws counts as "not yet" (a control socket not there yet, a daemon between
 * restarts). After `timeoutMs` it rejects, naming `what` and the last error the check threw:
 * a caller never needs to test the result for a timeout.
 */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  intervalMs = 10,
): Promise<number> {
  const start = Date.now();
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return Date.now() - start;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() - start > timeoutMs) {
      const why = lastError === undefined ? '' : ` (last check failed: ${String(lastError)})`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Polls `read` until its value equals `expected` (compared as JSON) and resolves with the last
 * value read, or undefined when every read threw; never rejects. The caller asserts that value
 * (t.same): a test waits for exactly the state it asserts, and a state that never comes fails
 * with the difference rather than a timeout.
 */
export async function settled<T>(
  read: () => Promise<T>,
  expected: unknown,
  timeoutMs = 10_000,
  intervalMs = 10,
): Promise<T | undefined> {
  let last: T | undefined;
  const want = JSON.stringify(expected);
  await waitFor(
    'a settled value',
    async () => {
      last = await read();
      return JSON.stringify(last) === want;
    },
    timeoutMs,
    intervalMs,
  ).catch(() => undefined);
  return last;
}
