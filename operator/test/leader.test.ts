// Leader election against an in-memory Lease API that behaves as the API server does where it matters:
// a create fails with 409 when the Lease exists, a replace unless it carries the current resourceVersion,
// times must be MicroTimes, and state changes when a call completes, so concurrent candidates race.
// Durations are short (lease 2 s, renew deadline 1 s, retry 0.25 s); timings are checked with slack.
import os from 'node:os';
import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { V1MicroTime, type V1Lease } from '@kubernetes/client-node';
import { LeaderElector, type LeaderElectorOptions, type LeaseApi } from '../src/leader.js';
import { createLogger } from '../src/log.js';

const NS = 'streamroom-system';
const LEASE = 'streamroom-operator';
const TIMING = { leaseDurationSeconds: 2, renewDeadlineSeconds: 1, retryPeriodSeconds: 0.25 };
const LEASE_MS = 2000;
const RENEW_MS = 1000;
const RETRY_MS = 250;
/** The longest a standby waits between attempts (client-go's jitter: up to 2.2 retry periods). */
const MAX_RETRY_MS = RETRY_MS * 2.2;
/** Slack for timers, the fake's latency and a busy test machine. */
const SLACK_MS = 200;
/**
 * The longest a standby takes to lead after the leader's last renewal: it sees that renewal at its next
 * attempt (up to MAX_RETRY_MS later), waits out the lease from then, and notices at the attempt after.
 */
const LONGEST_FAILOVER_MS = LEASE_MS + 2 * MAX_RETRY_MS + SLACK_MS;
const MICRO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

jest.setTimeout(15_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const quiet = createLogger('error', () => undefined);
const apiError = (code: number, message: string) => Object.assign(new Error(message), { code });
const abortError = () => Object.assign(new Error('The user aborted a request.'), { name: 'AbortError' });

/** Resolves after ms, or rejects when the signal aborts (never resolves for Infinity). */
function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(abortError());
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError());
    };
    const timer =
      ms === Infinity
        ? undefined
        : setTimeout(() => {
            signal.removeEventListener('abort', onAbort);
            resolve();
          }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** The Leases of one namespace, as the API server keeps them. */
class FakeLeaseServer {
  private readonly leases = new Map<string, V1Lease>();
  private rv = 100;
  /** Writes refused because the Lease existed or had moved on. */
  conflicts = 0;
  /** How long each call takes; the Lease changes at its end. */
  latencyMs = { get: 2, create: 10, replace: 10 };

  /** A copy of the Lease as stored (times as the strings the API server sends). */
  lease(name = LEASE, namespace = NS): V1Lease | undefined {
    const lease = this.leases.get(`${namespace}/${name}`);
    return lease && (JSON.parse(JSON.stringify(lease)) as V1Lease);
  }

  /** Stores a Lease as another writer would, with a new resourceVersion. */
  put(lease: V1Lease): V1Lease {
    const stored = JSON.parse(JSON.stringify(lease)) as V1Lease;
    for (const time of [stored.spec?.acquireTime, stored.spec?.renewTime]) {
      if (time !== undefined && !MICRO_TIME.test(String(time))) {
        throw apiError(400, `Lease in version "v1" cannot be handled as a Lease: bad MicroTime ${time}`);
      }
    }
    if (!Number.isInteger(stored.spec?.leaseDurationSeconds ?? 0)) {
      throw apiError(400, 'spec.leaseDurationSeconds: must be an integer');
    }
    const { name = '', namespace = '' } = stored.metadata ?? {};
    stored.metadata = { ...stored.metadata, resourceVersion: String(++this.rv) };
    this.leases.set(`${namespace}/${name}`, stored);
    return this.lease(name, namespace)!;
  }

  create(lease: V1Lease): V1Lease {
    const { name = '', namespace = '' } = lease.metadata ?? {};
    if (this.lease(name, namespace)) {
      this.conflicts++;
      throw apiError(409, `leases.coordination.k8s.io "${name}" already exists`);
    }
    return this.put(lease);
  }

  replace(lease: V1Lease): V1Lease {
    const { name = '', namespace = '' } = lease.metadata ?? {};
    const current = this.lease(name, namespace);
    if (!current) throw apiError(404, `leases.coordination.k8s.io "${name}" not found`);
    if (lease.metadata?.resourceVersion !== current.metadata?.resourceVersion) {
      this.conflicts++;
      throw apiError(409, `Operation cannot be fulfilled on leases.coordination.k8s.io "${name}"`);
    }
    return this.put(lease);
  }
}

/** One candidate's connection to the fake server, which the tests can break. */
class FakeLeaseClient implements LeaseApi {
  /** 'fail': every call fails with a 500; 'hang': calls never answer (until abandoned). */
  mode: 'ok' | 'fail' | 'hang' = 'ok';
  /** Calls under way. */
  inFlight = 0;
  /** Creates and replaces sent. */
  writes = 0;

  constructor(private readonly server: FakeLeaseServer) {}

  get(namespace: string, name: string, signal: AbortSignal): Promise<V1Lease | undefined> {
    return this.call(signal, this.server.latencyMs.get, () => this.server.lease(name, namespace));
  }

  create(lease: V1Lease, signal: AbortSignal): Promise<V1Lease> {
    this.writes++;
    return this.call(signal, this.server.latencyMs.create, () => this.server.create(lease));
  }

  replace(lease: V1Lease, signal: AbortSignal): Promise<V1Lease> {
    this.writes++;
    return this.call(signal, this.server.latencyMs.replace, () => this.server.replace(lease));
  }

  private async call<T>(signal: AbortSignal, latencyMs: number, op: () => T): Promise<T> {
    this.inFlight++;
    try {
      await delay(this.mode === 'hang' ? Infinity : latencyMs, signal);
      if (this.mode === 'fail') throw apiError(500, 'etcdserver: request timed out');
      return op();
    } finally {
      this.inFlight--;
    }
  }
}

let electors: LeaderElector[] = [];
afterEach(async () => {
  await Promise.all(electors.map((e) => e.stop()));
  electors = [];
});

/** An elector on its own connection to the fake server, and what its callbacks reported. */
class Candidate {
  readonly client: FakeLeaseClient;
  readonly elector: LeaderElector;
  readonly newLeaders: string[] = [];
  startedAt?: number;
  stoppedAt?: number;
  stoppedReason?: string;

  constructor(server: FakeLeaseServer, identity: string, options: Partial<LeaderElectorOptions> = {}) {
    this.client = new FakeLeaseClient(server);
    this.elector = new LeaderElector({
      namespace: NS,
      leaseName: LEASE,
      identity,
      ...TIMING,
      api: this.client,
      log: quiet,
      onStartedLeading: () => void (this.startedAt = Date.now()),
      onStoppedLeading: (reason) => {
        this.stoppedAt = Date.now();
        this.stoppedReason = reason;
      },
      onNewLeader: (id) => void this.newLeaders.push(id),
      ...options,
    });
    electors.push(this.elector);
  }
}

/** Polls until check() holds; the time it took. */
async function waitFor(what: string, check: () => boolean, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(5);
  }
  return Date.now() - started;
}

const leadersOf = (candidates: Candidate[]) => candidates.filter((c) => c.elector.isLeader);

/** Counts, every few milliseconds, how many candidates lead at once; the most seen. */
function watchLeaders(candidates: Candidate[]): { readonly most: number; stop(): void } {
  let most = 0;
  const sample = () => void (most = Math.max(most, leadersOf(candidates).length));
  sample();
  const timer = setInterval(sample, 2);
  return {
    get most() {
      return most;
    },
    stop() {
      clearInterval(timer);
      sample();
    },
  };
}

/** Starts two candidates; resolves once one leads, with the leader and the standby. */
async function leaderAndStandby(server: FakeLeaseServer): Promise<[Candidate, Candidate]> {
  const both = [new Candidate(server, 'a'), new Candidate(server, 'b')];
  both.forEach((c) => c.elector.start());
  await waitFor('a leader', () => leadersOf(both).length === 1, 1000);
  const [leader] = leadersOf(both) as [Candidate];
  const standby = both.find((c) => c !== leader)!;
  // the standby has seen the leader's record (and a renewal) before the test goes on
  await waitFor(
    'the standby to see the leader',
    () => standby.elector.leader === leader.elector.identity,
    1000,
  );
  await sleep(2 * RETRY_MS);
  return [leader, standby];
}

const heldLease = (holderIdentity: string, renewTime: Date, extra: object = {}): V1Lease => ({
  apiVersion: 'coordination.k8s.io/v1',
  kind: 'Lease',
  metadata: { name: LEASE, namespace: NS },
  spec: {
    holderIdentity,
    leaseDurationSeconds: TIMING.leaseDurationSeconds,
    acquireTime: renewTime,
    renewTime,
    leaseTransitions: 0,
    ...extra,
  },
});

describe('LeaderElector', () => {
  it('elects one of two candidates; the leader keeps renewing and the other stands by', async () => {
    const server = new FakeLeaseServer();
    const [leader, standby] = await leaderAndStandby(server);
    const watch = watchLeaders([leader, standby]);
    const first = server.lease()!;
    await sleep(4 * RETRY_MS);
    watch.stop();

    expect(watch.most).toBe(1);
    expect(leader.elector.isLeader).toBe(true);
    expect([leader.elector.masterStatus, standby.elector.masterStatus]).toEqual([1, 0]);
    expect([leader.elector.leader, standby.elector.leader]).toEqual([
      leader.elector.identity,
      leader.elector.identity,
    ]);
    expect(leader.newLeaders).toEqual([leader.elector.identity]);
    expect(standby.newLeaders).toEqual([leader.elector.identity]);
    expect(standby.startedAt).toBeUndefined();
    expect(leader.stoppedAt).toBeUndefined();
    const now = server.lease()!;
    expect(now.spec).toMatchObject({
      holderIdentity: leader.elector.identity,
      leaseDurationSeconds: 2,
      leaseTransitions: 0,
      acquireTime: first.spec?.acquireTime,
    });
    expect(String(now.spec?.renewTime)).toMatch(MICRO_TIME);
    expect(Date.parse(String(now.spec?.renewTime))).toBeGreaterThan(
      Date.parse(String(first.spec?.renewTime)),
    );
  });

  it('of five candidates creating the Lease at once, one wins and the others get 409', async () => {
    const server = new FakeLeaseServer();
    const all = ['a', 'b', 'c', 'd', 'e'].map((id) => new Candidate(server, id));
    const watch = watchLeaders(all);
    all.forEach((c) => c.elector.start());
    await waitFor('a leader', () => leadersOf(all).length === 1, 1000);
    await sleep(4 * RETRY_MS);
    watch.stop();

    expect(watch.most).toBe(1);
    expect(server.conflicts).toBeGreaterThanOrEqual(4);
    const [leader] = leadersOf(all);
    expect(server.lease()?.spec?.holderIdentity).toBe(leader?.elector.identity);
    for (const c of all) expect(c.newLeaders).toEqual([leader?.elector.identity]);
  });

  it('of four candidates taking over an expired Lease at once, one wins and the others get 409', async () => {
    const server = new FakeLeaseServer();
    server.put(heldLease('departed', new V1MicroTime(Date.now())));
    // slow replaces: every candidate reads the expired version before the first takeover lands
    server.latencyMs.replace = MAX_RETRY_MS + 50;
    const all = ['a', 'b', 'c', 'd'].map((id) => new Candidate(server, id));
    const watch = watchLeaders(all);
    all.forEach((c) => c.elector.start());
    await waitFor('a leader', () => leadersOf(all).length === 1, LEASE_MS + MAX_RETRY_MS + 1000);
    // renewals at normal speed: two writes that slow in a row would miss the 1 s renew deadline
    server.latencyMs.replace = 10;
    await sleep(RENEW_MS);
    watch.stop();

    expect(watch.most).toBe(1);
    expect(server.conflicts).toBeGreaterThanOrEqual(1);
    const [leader] = leadersOf(all);
    expect(server.lease()?.spec).toMatchObject({
      holderIdentity: leader?.elector.identity,
      leaseTransitions: 1,
    });
  });

  it('a standby takes over about a lease duration after the leader stops renewing', async () => {
    const server = new FakeLeaseServer();
    const [leader, standby] = await leaderAndStandby(server);
    const before = server.lease()!;
    const watch = watchLeaders([leader, standby]);
    await leader.elector.stop(); // as a kill -9: no release
    const stoppedAt = Date.now();
    expect(leader.elector.isLeader).toBe(false);
    await waitFor('the standby to lead', () => standby.elector.isLeader, LONGEST_FAILOVER_MS);
    const failoverMs = Date.now() - stoppedAt;
    watch.stop();

    // the last renewal was at most a retry period before the kill
    expect(failoverMs).toBeGreaterThanOrEqual(LEASE_MS - RETRY_MS - SLACK_MS);
    expect(failoverMs).toBeLessThanOrEqual(LONGEST_FAILOVER_MS);
    expect(watch.most).toBe(1);
    expect(leader.stoppedAt).toBeUndefined(); // stop() is not a lost lease
    expect(standby.newLeaders).toEqual([leader.elector.identity, standby.elector.identity]);
    const after = server.lease()!;
    expect(after.spec).toMatchObject({ holderIdentity: standby.elector.identity, leaseTransitions: 1 });
    expect(after.spec?.acquireTime).not.toEqual(before.spec?.acquireTime);
  });

  it('a clean stop with release hands over within about a retry period', async () => {
    const server = new FakeLeaseServer();
    const [leader, standby] = await leaderAndStandby(server);
    const watch = watchLeaders([leader, standby]);
    const stopping = Date.now();
    await leader.elector.stop({ release: true });
    expect(leader.elector.isLeader).toBe(false);
    await waitFor('the standby to lead', () => standby.elector.isLeader, MAX_RETRY_MS + SLACK_MS);
    const handoverMs = Date.now() - stopping;
    watch.stop();

    expect(handoverMs).toBeLessThanOrEqual(MAX_RETRY_MS + SLACK_MS);
    expect(watch.most).toBe(1);
    expect(leader.stoppedAt).toBeUndefined();
    expect(server.lease()?.spec).toMatchObject({
      holderIdentity: standby.elector.identity,
      leaseDurationSeconds: 2,
      leaseTransitions: 1,
    });
  });

  it.each([
    ['fail', 'its renewals fail'],
    ['hang', 'the API server stops answering'],
  ] as const)(
    'a leader stops leading within the renew deadline when %s (%s), before a standby takes over',
    async (mode, _what) => {
      const server = new FakeLeaseServer();
      const [leader, standby] = await leaderAndStandby(server);
      const watch = watchLeaders([leader, standby]);
      leader.client.mode = mode;
      const brokenAt = Date.now();
      await waitFor(
        'the leader to stop leading',
        () => leader.stoppedAt !== undefined,
        RENEW_MS + RETRY_MS + SLACK_MS,
      );
      const lostAfterMs = leader.stoppedAt! - brokenAt;
      await waitFor('the standby to lead', () => standby.elector.isLeader, LONGEST_FAILOVER_MS);
      watch.stop();

      // the deadline runs from when the renewal fell due: between 0 and 1 retry period after the break
      expect(lostAfterMs).toBeGreaterThanOrEqual(RENEW_MS - SLACK_MS);
      expect(lostAfterMs).toBeLessThanOrEqual(RENEW_MS + RETRY_MS + SLACK_MS);
      expect(leader.stoppedReason).toMatch(/could not renew the lease within the renew deadline \(1 s\)/);
      expect(leader.elector.isLeader).toBe(false);
      expect(leader.elector.masterStatus).toBe(0);
      expect(leader.client.inFlight).toBe(0); // hanging calls were abandoned at the deadline
      expect(standby.startedAt!).toBeGreaterThan(leader.stoppedAt!);
      expect(watch.most).toBe(1);
      // it does not stand again: the caller restarts the process
      leader.client.mode = 'ok';
      await sleep(LEASE_MS);
      expect(leader.elector.isLeader).toBe(false);
      expect(server.lease()?.spec?.holderIdentity).toBe(standby.elector.identity);
    },
  );

  it('a leader that finds the Lease held by another stops leading at its next renewal', async () => {
    const server = new FakeLeaseServer();
    const leader = new Candidate(server, 'a');
    leader.elector.start();
    await waitFor('a leader', () => leader.elector.isLeader, 1000);
    const current = server.lease()!;
    server.put({
      ...current,
      spec: { ...current.spec, holderIdentity: 'usurper', renewTime: new V1MicroTime(Date.now()) },
    });
    const takenAt = Date.now();
    await waitFor('the leader to stop leading', () => leader.stoppedAt !== undefined, RETRY_MS + SLACK_MS);

    expect(leader.stoppedAt! - takenAt).toBeLessThanOrEqual(RETRY_MS + SLACK_MS);
    expect(leader.stoppedReason).toBe('the lease is held by usurper');
    expect(leader.elector.leader).toBe('usurper');
    expect(leader.newLeaders).toEqual(['a', 'usurper']);
    expect(server.lease()?.spec?.holderIdentity).toBe('usurper');
  });

  it('a standby judges expiry by its own clock: a renewTime long past or far ahead changes nothing', async () => {
    const server = new FakeLeaseServer();
    const hour = 3600_000;
    server.put(heldLease('stale', new V1MicroTime(Date.now() - hour)));
    server.put({
      ...heldLease('skewed', new V1MicroTime(Date.now() + hour)),
      metadata: { name: 'skewed', namespace: NS },
    });
    const stale = new Candidate(server, 'x');
    const skewed = new Candidate(server, 'y', { leaseName: 'skewed' });
    const startedAt = Date.now();
    stale.elector.start();
    skewed.elector.start();
    await waitFor(
      'both to lead',
      () => stale.elector.isLeader && skewed.elector.isLeader,
      LEASE_MS + MAX_RETRY_MS + SLACK_MS,
    );

    for (const c of [stale, skewed]) {
      expect(c.startedAt! - startedAt).toBeGreaterThanOrEqual(LEASE_MS);
      expect(c.newLeaders).toEqual([c === stale ? 'stale' : 'skewed', c.elector.identity]);
    }
    expect(server.lease()?.spec).toMatchObject({ holderIdentity: 'x', leaseTransitions: 1 });
    expect(server.lease('skewed')?.spec).toMatchObject({ holderIdentity: 'y', leaseTransitions: 1 });
  });

  it('a released Lease (no holder) is taken at once, counting a transition', async () => {
    const server = new FakeLeaseServer();
    server.put(heldLease('', new V1MicroTime(Date.now()), { leaseDurationSeconds: 1, leaseTransitions: 3 }));
    const c = new Candidate(server, 'a');
    c.elector.start();
    const ms = await waitFor('it to lead', () => c.elector.isLeader, 500);

    expect(ms).toBeLessThan(SLACK_MS);
    expect(server.lease()?.spec).toMatchObject({
      holderIdentity: 'a',
      leaseDurationSeconds: 2,
      leaseTransitions: 4,
    });
  });

  it('a standby that stops, even with release, leaves the Lease alone; stop is idempotent; start runs once', async () => {
    const server = new FakeLeaseServer();
    const [leader, standby] = await leaderAndStandby(server);
    const writes = standby.client.writes;
    const stopping = standby.elector.stop({ release: true });
    expect(standby.elector.stop({ release: true })).toBe(stopping);
    await stopping;
    await sleep(2 * RETRY_MS);

    expect(leader.elector.isLeader).toBe(true);
    expect(server.lease()?.spec?.holderIdentity).toBe(leader.elector.identity);
    expect(standby.client.writes).toBe(writes);
    expect(() => standby.elector.start()).toThrow('a LeaderElector starts only once');
    expect(() => leader.elector.start()).toThrow('a LeaderElector starts only once');
  });

  it('logs a failing onStartedLeading callback and keeps leading', async () => {
    const server = new FakeLeaseServer();
    const lines: { level: string; msg: string; error?: string }[] = [];
    const c = new Candidate(server, 'a', {
      log: createLogger('error', (line) => void lines.push(JSON.parse(line))),
      onStartedLeading: async () => {
        throw new Error('caches did not sync');
      },
    });
    c.elector.start();
    await waitFor('it to lead', () => c.elector.isLeader, 1000);
    await sleep(2 * RETRY_MS);

    expect(c.elector.isLeader).toBe(true);
    expect(lines).toEqual([
      expect.objectContaining({
        msg: 'leader election: onStartedLeading failed',
        error: 'caches did not sync',
      }),
    ]);
  });

  it('rejects durations client-go would reject, and an empty identity', () => {
    const base = {
      namespace: NS,
      leaseName: LEASE,
      api: new FakeLeaseClient(new FakeLeaseServer()),
      log: quiet,
    };
    const bad: [Partial<LeaderElectorOptions>, RegExp][] = [
      [{ leaseDurationSeconds: 1.5 }, /whole number of seconds/],
      [{ leaseDurationSeconds: 10, renewDeadlineSeconds: 10 }, /must be less than leaseDurationSeconds/],
      [{ renewDeadlineSeconds: 2, retryPeriodSeconds: 2 }, /must exceed 1.2 × retryPeriodSeconds/],
      [{ retryPeriodSeconds: 0 }, /must be positive/],
      [{ identity: '' }, /identity must not be empty/],
      [{ leaseName: '' }, /needs a namespace and a name/],
    ];
    for (const [options, message] of bad) {
      expect(() => new LeaderElector({ ...base, ...options })).toThrow(message);
    }
    const elector = new LeaderElector(base);
    expect(elector.identity).toMatch(new RegExp(`^${os.hostname()}_[0-9a-f-]{36}$`));
    expect(new LeaderElector(base).identity).not.toBe(elector.identity);
  });
});
