// One jest run for every workspace. Tests are TypeScript compiled by ts-jest as native ESM
// (the Kubernetes client is ESM-only), so jest runs with --experimental-vm-modules.
const project = (name, extra = {}) => ({
  displayName: name,
  roots: [`<rootDir>/${name}/test`],
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: `<rootDir>/${name}/tsconfig.json` }] },
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testEnvironment: 'node',
  ...extra,
});

/** @type {import('jest').Config} */
export default {
  projects: [project('operator'), project('room-image'), project('e2e')],
};
