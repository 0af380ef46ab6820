/** Public surface of src/config: typed, validated, defaulted daemon configuration. */
export * from './common.js';
export * from './ha.js';
export * from './mn.js';
export * from './load.js';
export { parseToml, suggestKey, editDistance, type Ipv6Prefix } from './reader.js';
