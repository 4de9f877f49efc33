// The set-up paths of `npm start` and `npm test` on a machine that lacks the packages they install,
// proven on this machine: each case runs in a private mount namespace where the packages' files are
// hidden (an empty tmpfs over the CNI plugin directories, a non-executable empty file bound over each
// command). Every missing package must be either installed or reported by name with the command
// that installs it, before any long build starts; and no entry script may exit without saying what
// failed.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { REPO_DIR } from '../src/cluster.js';

const isRoot = process.getuid?.() === 0;
/** The commands the scripts install packages for (the Debian package of each in the fake below). */
const HIDDEN: Record<string, string> = {
  containerd: 'containerd',
  ctr: 'containerd',
  'containerd-shim-runc-v2': 'containerd',
  runc: 'runc',
  conntrack: 'conntrack',
  iptables: 'iptables',
  ipset: 'ipset',
  nft: 'nftables',
  socat: 'socat',
  chromium: 'chromium',
  'lua5.4': 'lua5.4',
  'redis-server': 'redis-server',
  shellcheck: 'shellcheck',
  docker: 'docker.io',
  dockerd: 'docker.io',
};
const NODE_PACKAGES = 'containerd runc conntrack iptables socat containernetworking-plugins ipset nftables';
const BIN_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

const tmp = mkdtempSync(path.join(os.tmpdir(), 'streamroom-setup-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * Runs a bash script in a private mount namespace with the packages hidden. A hidden command is a
 * 0644 empty file of its own bound over the real one, so a fake apt-get can "install" it again
 * with chmod +x; the CNI plugins get an empty tmpfs (and /opt one too, for /opt/cni/bin).
 */
function runHidden(script: string, env: Record<string, string> = {}) {
  const hideDir = mkdtempSync(path.join(tmp, 'hide-'));
  const prelude = `
    set -e
    mount --make-rprivate /
    for d in /usr/lib/cni /opt; do if [[ -d "$d" ]]; then mount -t tmpfs tmpfs "$d"; fi; done
    n=0
    for c in ${Object.keys(HIDDEN).join(' ')}; do
      for dir in ${BIN_DIRS.join(' ')}; do
        if [[ -e "$dir/$c" && ! -d "$dir/$c" ]]; then
          n=$((n + 1)); : >"${hideDir}/$n"; chmod 0644 "${hideDir}/$n"
          echo "$dir/$c ${hideDir}/$n" >>"${hideDir}/map"
          mount --bind "${hideDir}/$n" "$dir/$c"
        fi
      done
    done
    export HIDE_MAP="${hideDir}/map"
    cd "${REPO_DIR}"
  `;
  const r = spawnSync('unshare', ['--mount', 'bash', '-c', `${prelude}\n${script}`], {
    encoding: 'utf8',
    timeout: 120_000,
    env: {
      ...process.env,
      STREAMROOM_CLUSTER_DIR: path.join(hideDir, 'cluster'),
      STREAMROOM_APT_UPDATED: '0', // (npm test may have updated already)
      ...env,
    },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, hideDir };
}

const describeRoot = isRoot ? describe : describe.skip;

describeRoot('as root, with the packages hidden', () => {
  it('hides what it claims to hide', () => {
    const r = runHidden(
      `for c in ${Object.keys(HIDDEN).join(' ')}; do p="$(type -P "$c")" && [[ -x "$p" ]] && exit 1; done
       ls /usr/lib/cni/bridge /opt/cni/bin/bridge 2>/dev/null && exit 1; echo hidden`,
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('hidden');
  });

  describe('with apt-get off (STREAMROOM_NO_APT=1), each entry point names every package and the command', () => {
    const noApt = { STREAMROOM_NO_APT: '1', STREAMROOM_CLUSTER: 'local' };
    const installLine = (stderr: string) =>
      /install them with: sudo apt-get install -y (.*)$/m.exec(stderr)?.[1];

    it('cli.ts up --real-node (the path of the fresh-machine failure)', () => {
      const r = runHidden('node --import tsx e2e/src/cluster/cli.ts up --real-node', noApt);
      expect(r.code).not.toBe(0);
      expect(installLine(r.stderr)).toBe(NODE_PACKAGES);
      expect(r.stderr).toMatch(
        /missing: containerd \(containerd\) .*\/usr\/lib\/cni\/bridge \(containernetworking-plugins\)/,
      );
    });

    it('npm start (e2e/scripts/start.sh), before building anything', () => {
      const r = runHidden('bash e2e/scripts/start.sh', noApt);
      expect(r.code).not.toBe(0);
      expect(installLine(r.stderr)).toBe(`${NODE_PACKAGES} docker.io`);
      expect(r.stderr).not.toMatch(/building|== \[/);
    });

    it('npm test (e2e/scripts/test.sh), before building anything', () => {
      const r = runHidden('bash e2e/scripts/test.sh', noApt);
      expect(r.code).not.toBe(0);
      expect(installLine(r.stderr)).toBe(
        `chromium lua5.4 redis-server shellcheck ${NODE_PACKAGES} docker.io`,
      );
      expect(r.stderr).not.toMatch(/building|== \[|jest:/);
    });

    it('the images build (e2e/src/build/cli.ts images)', () => {
      const r = runHidden('node --import tsx e2e/src/build/cli.ts images --only redis', noApt);
      expect(r.code).not.toBe(0);
      expect(installLine(r.stderr)).toBe('docker.io');
      expect(r.stderr).toMatch(/no Docker engine/);
    });
  });

  it('with apt-get, installs every missing package in one call and carries on', () => {
    // A fake apt-get first on PATH: "installing" a package makes its hidden commands executable
    // again (or creates them) and puts the CNI plugins into the tmpfs.
    const fakeBin = mkdtempSync(path.join(tmp, 'bin-'));
    const packages = JSON.stringify(HIDDEN).replace(/'/g, '');
    writeFileSync(
      path.join(fakeBin, 'apt-get'),
      `#!/usr/bin/env bash
echo "apt-get $*" >>"${fakeBin}/apt.log"
[[ "$1" == install ]] || exit 0
for pkg in "$@"; do
  [[ "$pkg" == -* || "$pkg" == install ]] && continue
  if [[ "$pkg" == containernetworking-plugins ]]; then
    d=/usr/lib/cni; [[ -d $d ]] || d=/opt/cni/bin
    mkdir -p "$d"; for p in bridge host-local portmap loopback firewall; do printf '#!/bin/true\\n' >"$d/$p"; chmod +x "$d/$p"; done
    continue
  fi
  for c in $(node -e 'const m=${packages};console.log(Object.keys(m).filter(k=>m[k]===process.argv[1]).join(" "))' "$pkg"); do
    hidden="$(awk -v c="$c" '$1 ~ "/"c"$" {print $2}' "$HIDE_MAP" 2>/dev/null)"
    if [[ -n "$hidden" ]]; then chmod +x $hidden; else printf '#!/bin/true\\n' >"${fakeBin}/$c"; chmod +x "${fakeBin}/$c"; fi
  done
done
`,
    );
    chmodSync(path.join(fakeBin, 'apt-get'), 0o755);
    const r = runHidden(
      `export PATH="${fakeBin}:$PATH"
       source e2e/scripts/preflight.sh
       need_packages "\${TEST_PACKAGES[@]}" "\${NODE_PACKAGES[@]}" "\${IMAGE_PACKAGES[@]}"
       node --import tsx --input-type=module -e '
         const { preflight } = await import("./e2e/src/cluster/node.ts");
         const { REAL_NODE_DEFAULTS } = await import("./e2e/src/cluster/config.ts");
         console.log("cni: " + (await preflight(REAL_NODE_DEFAULTS)));'`,
    );
    expect(r.stderr).toMatch(/installing chromium lua5\.4 redis-server shellcheck/);
    expect(r.code).toBe(0);
    const calls = readFileSync(path.join(fakeBin, 'apt.log'), 'utf8').trim().split('\n');
    expect(calls).toEqual([
      'apt-get update -qq',
      `apt-get install -y -qq --no-install-recommends chromium lua5.4 redis-server shellcheck ${NODE_PACKAGES} docker.io`,
    ]);
    expect(r.stdout).toMatch(/^cni: \/(usr\/lib\/cni|opt\/cni\/bin)$/m);
  });
});

describe('without root', () => {
  it('reports what to install instead of calling apt-get', () => {
    const r = spawnSync(
      'bash',
      ['-c', 'source e2e/scripts/packages.sh; need_packages streamroom-none=streamroom-pkg true=coreutils'],
      { cwd: REPO_DIR, encoding: 'utf8', env: { ...process.env, STREAMROOM_NO_APT: '1' } },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('missing: streamroom-none (streamroom-pkg)');
    expect(r.stderr).toContain('install them with: sudo apt-get install -y streamroom-pkg');
  });
});

describe('every entry script says what failed', () => {
  const scripts = spawnSync('git', ['ls-files', 'e2e/*.sh', '.ci/run'], { cwd: REPO_DIR, encoding: 'utf8' })
    .stdout.split('\n')
    .filter((f) => f && readFileSync(path.join(REPO_DIR, f), 'utf8').startsWith('#!/usr/bin/env bash'));

  it('finds the entry scripts', () => {
    expect(scripts).toEqual(
      expect.arrayContaining(['.ci/run', 'e2e/scripts/test.sh', 'e2e/scripts/start.sh']),
    );
  });

  it.each(scripts)('%s sources e2e/scripts/errors.sh before anything else', (file) => {
    const code = readFileSync(path.join(REPO_DIR, file), 'utf8')
      .split('\n')
      .filter((l) => l.trim() && !l.trim().startsWith('#'));
    expect(code[0]).toMatch(
      /^source "\$\(dirname "\$\{BASH_SOURCE\[0\]\}"\)\/(\.\.\/)*(e2e\/)?(scripts\/)?errors\.sh"/,
    );
  });

  it('a failing command prints the script, line, command and the functions it was in', () => {
    const dir = mkdtempSync(path.join(tmp, 'err-'));
    const script = path.join(dir, 'entry.sh');
    writeFileSync(
      script,
      `source "${REPO_DIR}/e2e/scripts/errors.sh"\ninner() {\n  grep -q needle /dev/null\n}\nouter() { inner; }\nouter\necho unreachable\n`,
    );
    const r = spawnSync('bash', [script], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`FAILED (exit 1) at ${script}:3: grep -q needle /dev/null`);
    expect(r.stderr).toContain(`in inner() called at ${script}:5`);
    expect(r.stderr).toContain(`in outer() called at ${script}:6`);
  });

  it('run_logged keeps a failing step\u2019s output and prints its tail', () => {
    const dir = mkdtempSync(path.join(tmp, 'log-'));
    const r = spawnSync(
      'bash',
      [
        '-c',
        `source e2e/scripts/errors.sh; run_logged ${dir}/step.log bash -c 'echo detail-1; echo detail-2 >&2; exit 3'`,
      ],
      { cwd: REPO_DIR, encoding: 'utf8' },
    );
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/failed \(exit 3\)[^]*\| detail-1\n {2}\| detail-2/);
    expect(readdirSync(dir)).toEqual(['step.log']);
  });
});
