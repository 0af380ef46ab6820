/**
 * Non-cryptographic randomness for protocol choices that RFCs ask to randomize (jitter, the
 * order of equally preferred home agents): cores take a `() => number` in [0, 1) so tests
 * inject a seeded one. Keys, tokens and nonces never come from here (src/crypto/random.ts).
 */
export type RandomSource = () => number;

/** Math.random: the one place the cores' default randomness comes from. */
export const systemRandom: RandomSource = () => Math.random();
