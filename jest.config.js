// One jest run for every workspace. Tests are TypeScript compiled by ts-jest as native ESM
// (the Kubernetes client is ESM-only), so jest runs with --experimental-vm-modules.
const tsJest = {
  '^.+\\.ts$': ['ts-jest', { useESM: true, isolatedModules: true }],
};
const common = {
  extensionsToTreatAsEsm: ['.ts'],
  transform: tsJest,
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testEnvironment: 'node',
};

/** @type {import('jest').Config} */
export default {
  projects: [
    { ...common, displayName: 'operator', roots: ['<rootDir>/operator/test'] },
    { ...common, displayName: 'room-image', roots: ['<rootDir>/room-image/test'] },
  ],
};
