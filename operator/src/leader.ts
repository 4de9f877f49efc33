// Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection package does it, so
// that of several operator replicas exactly one does the work while the others stand by:
// - a candidate takes the Lease when it does not exist, when nobody holds it (it was released), or when
//   the record it shows has not changed for its leaseDurationSeconds by the candidate's own clock: the
//   moment a record is first seen is noted locally (the observed time) and the holder's renewTime is
//   never compared with this machine's clock, so clock skew between nodes does not matter;
// - every write is a create (409 when the Lease exists) or a replace over the resourceVersion last read
//   (409 when anyone wrote in between), so two candidates never both win;
// - the leader renews every retryPeriod and stops leading when it has not renewed within renewDeadline
//   of a renewal falling due (shorter than the lease duration: it stops before anyone may take over),
//   or at once when it finds the Lease held by another; it does not stand again (the caller exits);
// - a standby retries every retryPeriod with jitter (client-go's wait.JitterUntil: 1 to 2.2 periods);
// - a clean shutdown may release the Lease (no holder, a duration of 1 s), so a standby takes over at
//   its next retry rather than after the lease duration.
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import {
  CoordinationV1Api,
  Observable,
  V1MicroTime,
  type ConfigurationOptions,
  type KubeConfig,
  type V1Lease,
  type V1LeaseSpec,
} from '@kubernetes/client-node';
import { FIELD_MANAGER } from './builders.js';
import { statusCode } from './kube.js';
import { errorMessage, type Logger } from './log.js';

/** controller-runtime's defaults. */
export const LEADER_ELECTION_DEFAULTS = {
  leaseDurationSeconds: 15,
  renewDeadlineSeconds: 10,
  retryPeriodSeconds: 2,
} as const;

/** A standby waits between retryPeriod and (1 + JITTER_FACTOR) × retryPeriod between attempts. */
const JITTER_FACTOR = 1.2;

/**
 * The Lease calls an elector makes (KubeLeaseApi; an in-memory fake in the unit tests). Each call is
 * abandoned when its signal aborts.
 */
export interface LeaseApi {
  /** The Lease, or undefined when it does not exist. */
  get(namespace: string, name: string, signal: AbortSignal): Promise<V1Lease | undefined>;
  /** Creates the Lease; fails with 409 when it exists. */
  create(lease: V1Lease, signal: AbortSignal): Promise<V1Lease>;
  /** Replaces the Lease over its metadata.resourceVersion; fails with 409 when the Lease moved on. */
  replace(lease: V1Lease, signal: AbortSignal): Promise<V1Lease>;
}

/** Per-call options that abort the request when the signal does. */
function abortable(signal: AbortSignal): ConfigurationOptions {
  return {
    middleware: [
      {
        pre: (request) => {
          request.setSignal(signal);
          return new Observable(Promise.resolve(request));
        },
        post: (response) => new Observable(Promise.resolve(response)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}

/** LeaseApi on the API server. */
export class KubeLeaseApi implements LeaseApi {
  private readonly api: CoordinationV1Api;

  constructor(kc: KubeConfig) {
    this.api = kc.makeApiClient(CoordinationV1Api);
  }

  async get(namespace: string, name: string, signal: AbortSignal): Promise<V1Lease | undefined> {
    try {
      return await this.api.readNamespacedLease({ name, namespace }, abortable(signal));
    } catch (err) {
      if (statusCode(err) === 404) return undefined;
      throw err;
    }
  }

  create(lease: V1Lease, signal: AbortSignal): Promise<V1Lease> {
    return this.api.createNamespacedLease(
      { namespace: lease.metadata?.namespace ?? '', body: lease, fieldManager: FIELD_MANAGER },
      abortable(signal),
    );
  }

  async replace(lease: V1Lease, signal: AbortSignal): Promise<V1Lease> {
    const { name, namespace, resourceVersion } = lease.metadata ?? {};
    // without a resourceVersion the API server would overwrite whatever another candidate wrote
    if (!resourceVersion) throw new Error(`replacing Lease ${namespace}/${name} needs its resourceVersion`);
    return this.api.replaceNamespacedLease(
      { name: name ?? '', namespace: namespace ?? '', body: lease, fieldManager: FIELD_MANAGER },
      abortable(signal),
    );
  }
}

/** The leader election fields of a Lease's spec (client-go's LeaderElectionRecord). */
interface LeaseRecord {
  holderIdentity: string;
  leaseDurationSeconds: number;
  acquireTime?: Date;
  renewTime?: Date;
  leaseTransitions: number;
}

/** A MicroTime as read: client-node's models say Date, but it leaves the API server's string. */
function timeOf(value: Date | string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const time = new Date(value);
  return Number.isNaN(time.getTime()) ? undefined : time;
}

function recordOf(lease: V1Lease): LeaseRecord {
  const spec = lease.spec ?? {};
  return {
    holderIdentity: spec.holderIdentity ?? '',
    leaseDurationSeconds: spec.leaseDurationSeconds ?? 0,
    acquireTime: timeOf(spec.acquireTime),
    renewTime: timeOf(spec.renewTime),
    leaseTransitions: spec.leaseTransitions ?? 0,
  };
}

function sameRecord(a: LeaseRecord, b: LeaseRecord | undefined): boolean {
  return (
    b !== undefined &&
    a.holderIdentity === b.holderIdentity &&
    a.leaseDurationSeconds === b.leaseDurationSeconds &&
    a.leaseTransitions === b.leaseTransitions &&
    a.acquireTime?.getTime() === b.acquireTime?.getTime() &&
    a.renewTime?.getTime() === b.renewTime?.getTime()
  );
}

/** The spec to write: MicroTimes, which the API server wants with six fractional digits. */
function specOf(record: LeaseRecord): V1LeaseSpec {
  const micro = (t: Date | undefined) => (t ? new V1MicroTime(t.getTime()) : undefined);
  return {
    holderIdentity: record.holderIdentity,
    leaseDurationSeconds: record.leaseDurationSeconds,
    acquireTime: micro(record.acquireTime),
    renewTime: micro(record.renewTime),
    leaseTransitions: record.leaseTransitions,
  };
}

/**
 * Runs an API call with a signal that aborts after timeoutMs or when `cancel` aborts; a call cut short
 * by the timeout fails with an error that says so.
 */
async function within<T>(
  timeoutMs: number,
  call: (signal: AbortSignal) => Promise<T>,
  cancel?: AbortSignal,
): Promise<T> {
  const controller = new AbortController();
  const abort = () => controller.abort();
  const timer = setTimeout(abort, timeoutMs);
  cancel?.addEventListener('abort', abort);
  if (cancel?.aborted) abort();
  try {
    return await call(controller.signal);
  } catch (err) {
    if (controller.signal.aborted && !cancel?.aborted) {
      throw new Error(`no answer from the API server within ${Math.round(timeoutMs)} ms`);
    }
    throw err;
  } finally {
    clearTimeout(timer);
    cancel?.removeEventListener('abort', abort);
  }
}

/** What is wrong with the durations, in client-go's terms (and the Lease's: whole seconds). */
function timingProblem(lease: number, renewDeadline: number, retry: number): string | undefined {
  if (!Number.isInteger(lease) || lease < 1) {
    return `leaseDurationSeconds (${lease}) must be a whole number of seconds, at least 1`;
  }
  if (!(renewDeadline < lease)) {
    return `renewDeadlineSeconds (${renewDeadline}) must be less than leaseDurationSeconds (${lease})`;
  }
  if (!(retry > 0)) return `retryPeriodSeconds (${retry}) must be positive`;
  if (!(renewDeadline > JITTER_FACTOR * retry)) {
    return `renewDeadlineSeconds (${renewDeadline}) must exceed ${JITTER_FACTOR} × retryPeriodSeconds (${retry})`;
  }
  return undefined;
}

export interface LeaderElectorOptions {
  /** Where the Lease lives (the operator's own namespace), and the name all replicas share. */
  namespace: string;
  leaseName: string;
  /** Unique per candidate; default: the host name (a pod's name), '_' and a random UUID. */
  identity?: string;
  /** How long a lease holds without renewal, as observed by the others; whole seconds (15). */
  leaseDurationSeconds?: number;
  /** How long the leader keeps trying to renew before it stops leading (10). */
  renewDeadlineSeconds?: number;
  /** How often the leader renews, and a standby tries to acquire, before jitter (2). */
  retryPeriodSeconds?: number;
  api: LeaseApi;
  log: Logger;
  /** This instance now leads: start the work only the leader does. */
  onStartedLeading?: () => void | Promise<void>;
  /**
   * This instance lost the lease it led with (no renewal within the renew deadline, or the Lease found
   * held by another): stop the leader's work at once, typically by exiting so the pod restarts. The
   * elector does not stand again. Not called after stop().
   */
  onStoppedLeading?: (reason: string) => void | Promise<void>;
  /** The holder this instance observes changed (to itself too; '' when the lease was released). */
  onNewLeader?: (identity: string) => void;
}

type Attempt = { acquired: true } | { acquired: false; heldBy?: string };

export class LeaderElector {
  readonly identity: string;
  readonly namespace: string;
  readonly leaseName: string;
  private readonly leaseDurationSeconds: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;
  private readonly api: LeaseApi;
  private readonly log: Logger;
  private readonly callbacks: Pick<
    LeaderElectorOptions,
    'onStartedLeading' | 'onStoppedLeading' | 'onNewLeader'
  >;
  /** The Lease as last read or written (its resourceVersion is the next write's precondition). */
  private lease: V1Lease | undefined;
  /** Its record, and when (performance.now()) this instance first saw the record as it is. */
  private observed: LeaseRecord | undefined;
  private observedAt = 0;
  private reportedLeader = '';
  private leading = false;
  /** Aborted by stop(): cuts waits and API calls short. */
  private readonly halt = new AbortController();
  private loop: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;

  constructor(options: LeaderElectorOptions) {
    const {
      leaseDurationSeconds = LEADER_ELECTION_DEFAULTS.leaseDurationSeconds,
      renewDeadlineSeconds = LEADER_ELECTION_DEFAULTS.renewDeadlineSeconds,
      retryPeriodSeconds = LEADER_ELECTION_DEFAULTS.retryPeriodSeconds,
    } = options;
    const problem =
      !options.namespace || !options.leaseName
        ? 'the Lease needs a namespace and a name'
        : options.identity === ''
          ? 'the identity must not be empty'
          : timingProblem(leaseDurationSeconds, renewDeadlineSeconds, retryPeriodSeconds);
    if (problem) throw new Error(`leader election: ${problem}`);
    this.identity = options.identity ?? `${os.hostname()}_${randomUUID()}`;
    this.namespace = options.namespace;
    this.leaseName = options.leaseName;
    this.leaseDurationSeconds = leaseDurationSeconds;
    this.renewDeadlineMs = renewDeadlineSeconds * 1000;
    this.retryMs = retryPeriodSeconds * 1000;
    this.api = options.api;
    this.log = options.log;
    this.callbacks = options;
  }

  /** Whether this instance leads now. */
  get isLeader(): boolean {
    return this.leading;
  }

  /** 1 while this instance leads, else 0: leader_election_master_status{name="<leaseName>"}. */
  get masterStatus(): 0 | 1 {
    return this.leading ? 1 : 0;
  }

  /** The holder of the Lease as last observed (this instance's identity when it leads). */
  get leader(): string | undefined {
    return this.reportedLeader || undefined;
  }

  /** Stands for election: acquires, then renews, in the background until stop() or a lost lease. */
  start(): void {
    if (this.loop || this.stopping) throw new Error('leader election: a LeaderElector starts only once');
    this.log.info(this.logFields, 'standing for leader');
    this.loop = this.run();
  }

  /**
   * Stops electing and renewing, and aborts calls under way; with release, gives the Lease up when
   * this instance holds it, so a standby takes over at its next retry. Stop the leader's work before
   * releasing: a standby may start the moment the Lease is released.
   */
  stop(options: { release?: boolean } = {}): Promise<void> {
    this.stopping ??= this.shutdown(options.release ?? false);
    return this.stopping;
  }

  private get halted(): boolean {
    return this.halt.signal.aborted;
  }

  private get logFields(): Record<string, unknown> {
    return { lease: `${this.namespace}/${this.leaseName}`, identity: this.identity };
  }

  private async run(): Promise<void> {
    const acquiredAt = await this.acquire();
    if (acquiredAt === undefined) return;
    this.leading = true;
    this.log.info(this.logFields, 'became the leader');
    this.notify('onStartedLeading', () => this.callbacks.onStartedLeading?.());
    const lostBecause = await this.renew(acquiredAt);
    if (lostBecause === undefined) return;
    this.leading = false;
    this.log.error({ ...this.logFields, reason: lostBecause }, 'stopped leading');
    this.notify('onStoppedLeading', () => this.callbacks.onStoppedLeading?.(lostBecause));
  }

  /** Tries until it holds the Lease; resolves with when the winning attempt began, or undefined when stopped. */
  private async acquire(): Promise<number | undefined> {
    while (!this.halted) {
      const started = performance.now();
      const attempt = await this.tryAcquireOrRenew(this.renewDeadlineMs);
      if (this.halted) break;
      this.reportLeader();
      if (attempt.acquired) return started;
      if (attempt.heldBy) this.log.debug({ ...this.logFields, leader: attempt.heldBy }, 'standing by');
      await this.pause(this.retryMs * (1 + Math.random() * JITTER_FACTOR));
    }
    return undefined;
  }

  /**
   * Renews every retryPeriod; resolves with why leadership was lost (no renewal within renewDeadline of
   * one falling due, or the Lease held by another), or undefined when stopped. The deadline counts from
   * when the last successful renewal began, so a slow answer or a stalled event loop cannot stretch it.
   */
  private async renew(renewedAt: number): Promise<string | undefined> {
    for (;;) {
      await this.pause(this.retryMs);
      const deadline = renewedAt + this.retryMs + this.renewDeadlineMs;
      for (;;) {
        if (this.halted) return undefined;
        const started = performance.now();
        if (started >= deadline) {
          return `could not renew the lease within the renew deadline (${this.renewDeadlineMs / 1000} s)`;
        }
        const attempt = await this.tryAcquireOrRenew(deadline - started);
        if (this.halted) return undefined;
        this.reportLeader();
        if (attempt.acquired) {
          renewedAt = started;
          break;
        }
        if (attempt.heldBy) return `the lease is held by ${attempt.heldBy}`;
        await this.pause(Math.min(this.retryMs, deadline - performance.now()));
      }
    }
  }

  /** One attempt (client-go's tryAcquireOrRenew); failures are logged and count as not acquired. */
  private async tryAcquireOrRenew(timeoutMs: number): Promise<Attempt> {
    try {
      return await within(timeoutMs, (signal) => this.acquireOrRenew(signal), this.halt.signal);
    } catch (err) {
      if (this.halted) return { acquired: false };
      const fields = { ...this.logFields, error: errorMessage(err) };
      if (statusCode(err) === 409) this.log.info(fields, 'another candidate wrote the lease first');
      else this.log.warn(fields, this.leading ? 'could not renew the lease' : 'could not acquire the lease');
      return { acquired: false };
    }
  }

  private async acquireOrRenew(signal: AbortSignal): Promise<Attempt> {
    const now = new Date();
    const desired: LeaseRecord = {
      holderIdentity: this.identity,
      leaseDurationSeconds: this.leaseDurationSeconds,
      acquireTime: now,
      renewTime: now,
      leaseTransitions: 0,
    };
    // 1. The holder renews over the version it last wrote, without reading first.
    const last = this.lease;
    const observed = this.observed;
    if (last && observed?.holderIdentity === this.identity && this.observedValid()) {
      try {
        await this.replace(
          last,
          {
            ...desired,
            acquireTime: observed.acquireTime ?? now,
            leaseTransitions: observed.leaseTransitions,
          },
          signal,
        );
        return { acquired: true };
      } catch (err) {
        if (signal.aborted) throw err;
        this.log.info(
          {
            ...this.logFields,
            error: errorMessage(err),
          },
          'renewing over the version last written failed: reading the lease',
        );
      }
    }
    // 2. Read the Lease; create it when there is none.
    const current = await this.api.get(this.namespace, this.leaseName, signal);
    if (!current) {
      const lease: V1Lease = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.leaseName, namespace: this.namespace },
        spec: specOf(desired),
      };
      this.noteWritten(await this.api.create(lease, signal));
      return { acquired: true };
    }
    const record = this.noteRead(current);
    const holder = record.holderIdentity;
    if (holder && holder !== this.identity && this.observedValid()) {
      return { acquired: false, heldBy: holder };
    }
    // 3. Renew it, or take it over (free, released or expired), over the version just read.
    const ours = holder === this.identity;
    await this.replace(
      current,
      {
        ...desired,
        acquireTime: ours ? (record.acquireTime ?? now) : now,
        leaseTransitions: ours ? record.leaseTransitions : record.leaseTransitions + 1,
      },
      signal,
    );
    return { acquired: true };
  }

  private async replace(base: V1Lease, record: LeaseRecord, signal: AbortSignal): Promise<void> {
    this.noteWritten(await this.api.replace({ ...base, spec: { ...base.spec, ...specOf(record) } }, signal));
  }

  /** Notes the Lease as read; its record counts as observed from now only when it changed. */
  private noteRead(lease: V1Lease): LeaseRecord {
    this.lease = lease;
    const record = recordOf(lease);
    if (!sameRecord(record, this.observed)) {
      this.observed = record;
      this.observedAt = performance.now();
    }
    return record;
  }

  /** Notes the Lease as this instance just wrote it. */
  private noteWritten(lease: V1Lease): void {
    this.lease = lease;
    this.observed = recordOf(lease);
    this.observedAt = performance.now();
  }

  /** Whether the observed record's holder may still hold it (its duration since this instance saw it). */
  private observedValid(): boolean {
    const o = this.observed;
    return o !== undefined && this.observedAt + o.leaseDurationSeconds * 1000 > performance.now();
  }

  private reportLeader(): void {
    const holder = this.observed?.holderIdentity ?? '';
    if (holder === this.reportedLeader) return;
    this.reportedLeader = holder;
    this.log.info({ ...this.logFields, leader: holder }, holder ? 'new leader' : 'the lease was released');
    this.notify('onNewLeader', () => this.callbacks.onNewLeader?.(holder));
  }

  /** Calls back, logging what the callback throws or rejects with. */
  private notify(name: string, callback: () => void | Promise<void>): void {
    const failed = (err: unknown) =>
      this.log.error({ ...this.logFields, error: errorMessage(err) }, `leader election: ${name} failed`);
    try {
      void Promise.resolve(callback()).catch(failed);
    } catch (err) {
      failed(err);
    }
  }

  /** Waits, cut short by stop(). */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.halted) return resolve();
      const done = () => {
        clearTimeout(timer);
        this.halt.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.halt.signal.addEventListener('abort', done);
    });
  }

  private async shutdown(release: boolean): Promise<void> {
    this.halt.abort();
    await this.loop;
    const wasLeading = this.leading;
    this.leading = false;
    const released = release && (await this.release());
    this.log.info({ ...this.logFields, wasLeading, released }, 'leader election stopped');
  }

  /**
   * Gives the Lease up when the API server shows this instance holding it: no holder, a duration of
   * 1 s, over the version just read (so a Lease someone else took meanwhile is left alone).
   */
  private async release(): Promise<boolean> {
    try {
      return await within(this.renewDeadlineMs, async (signal) => {
        const current = await this.api.get(this.namespace, this.leaseName, signal);
        if (!current || current.spec?.holderIdentity !== this.identity) return false;
        const now = new Date();
        await this.replace(
          current,
          {
            holderIdentity: '',
            leaseDurationSeconds: 1,
            acquireTime: now,
            renewTime: now,
            leaseTransitions: current.spec.leaseTransitions ?? 0,
          },
          signal,
        );
        return true;
      });
    } catch (err) {
      this.log.warn(
        {
          ...this.logFields,
          error: errorMessage(err),
        },
        'could not release the lease: a standby takes over when it expires',
      );
      return false;
    }
  }
}
