// One jest run for every workspace. Tests are TypeScript compiled by ts-jest as native ESM
// (the Kubernetes client is ESM-only), so jest runs with --experimental-vm-modules.
const project = (name, extra = {}, dir = name) => ({
  displayName: name,
  roots: [`<rootDir>/${dir}/test`],
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: `<rootDir>/${dir}/tsconfig.json` }] },
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testEnvironment: 'node',
  ...extra,
});

/** @type {import('jest').Config} */
export default {
  projects: [
    project('operator'),
    project('room-image'),
    project('e2e'),
    // Pods with real containers (e2e/src/cluster/dev.ts): one cluster per machine, run on its own
    // after the others (npm test runs it as a second jest pass).
    project('e2e-real', { roots: ['<rootDir>/e2e/real'] }, 'e2e'),
    // Benchmarks (npm run bench:operator), never part of npm test.
    project('bench', { roots: ['<rootDir>/e2e/bench'], testRegex: '\\.bench\\.ts$' }, 'e2e'),
  ],
};
