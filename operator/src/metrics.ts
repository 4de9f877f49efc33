// The operator's Prometheus metrics, in the names controller users already graph (controller-runtime's
// controller_runtime_*, client-go's workqueue_* and rest_client_*, leader_election_master_status), plus
// rooms by phase. Each operator has its own registry (tests run several in one process).
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The controller's name in the labels, as controller-runtime names a controller by its kind. */
export const CONTROLLER = 'streamroom';

/** What the work queue reports (see workqueue.ts). */
export interface QueueObserver {
  added(): void;
  /** A key left the queue for a worker after waiting this long. */
  started(waitedSeconds: number): void;
  /** A worker finished a key after this long. */
  finished(workSeconds: number): void;
  retried(): void;
}

export interface MetricSources {
  queueDepth(): number;
  activeWorkers(): number;
  roomsByPhase(): Map<string, number>;
  informerRestarts(): number;
  isLeader(): boolean;
  /** The Lease's name (the label of leader_election_master_status). */
  leaseName: string;
}

const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class OperatorMetrics {
  readonly registry = new Registry();
  private readonly reconciles: Counter<'controller' | 'result'>;
  private readonly reconcileErrors: Counter<'controller'>;
  private readonly reconcileTime: Histogram<'controller'>;
  private readonly requests: Counter<'code' | 'method' | 'resource'>;
  private readonly requestTime: Histogram<'verb'>;
  readonly queue: QueueObserver;

  constructor(sources: MetricSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.reconciles = new Counter({
      name: 'controller_runtime_reconcile_total',
      help: 'Total number of reconciliations per controller, by result (success, error, requeue).',
      labelNames: ['controller', 'result'],
      registers,
    });
    this.reconcileErrors = new Counter({
      name: 'controller_runtime_reconcile_errors_total',
      help: 'Total number of reconciliation errors per controller.',
      labelNames: ['controller'],
      registers,
    });
    this.reconcileTime = new Histogram({
      name: 'controller_runtime_reconcile_time_seconds',
      help: 'Length of time per reconciliation per controller.',
      labelNames: ['controller'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    for (const result of ['success', 'error', 'requeue'])
      this.reconciles.inc({ controller: CONTROLLER, result }, 0);
    this.reconcileErrors.inc({ controller: CONTROLLER }, 0);
    new Gauge({
      name: 'controller_runtime_active_workers',
      help: 'Number of currently used workers per controller.',
      labelNames: ['controller'],
      registers,
      collect() {
        this.set({ controller: CONTROLLER }, sources.activeWorkers());
      },
    });
    new Gauge({
      name: 'workqueue_depth',
      help: 'Current depth of workqueue.',
      labelNames: ['name'],
      registers,
      collect() {
        this.set({ name: CONTROLLER }, sources.queueDepth());
      },
    });
    const adds = new Counter({
      name: 'workqueue_adds_total',
      help: 'Total number of adds handled by workqueue.',
      labelNames: ['name'],
      registers,
    });
    const retries = new Counter({
      name: 'workqueue_retries_total',
      help: 'Total number of retries handled by workqueue.',
      labelNames: ['name'],
      registers,
    });
    const queueDuration = new Histogram({
      name: 'workqueue_queue_duration_seconds',
      help: 'How long in seconds an item stays in workqueue before being requested.',
      labelNames: ['name'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    const workDuration = new Histogram({
      name: 'workqueue_work_duration_seconds',
      help: 'How long in seconds processing an item from workqueue takes.',
      labelNames: ['name'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    const q = { name: CONTROLLER };
    adds.inc(q, 0);
    retries.inc(q, 0);
    this.queue = {
      added: () => adds.inc(q),
      started: (s) => queueDuration.observe(q, s),
      finished: (s) => workDuration.observe(q, s),
      retried: () => retries.inc(q),
    };
    this.requests = new Counter({
      name: 'rest_client_requests_total',
      help: 'Number of HTTP requests to the API server, partitioned by status code, method and resource (watches not counted).',
      labelNames: ['code', 'method', 'resource'],
      registers,
    });
    this.requestTime = new Histogram({
      name: 'rest_client_request_duration_seconds',
      help: 'Request latency in seconds, by verb.',
      labelNames: ['verb'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    new Gauge({
      name: 'leader_election_master_status',
      help: 'Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master.',
      labelNames: ['name'],
      registers,
      collect() {
        this.set({ name: sources.leaseName }, sources.isLeader() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'streamroom_rooms',
      help: 'StreamRooms known to the operator, by status phase ("" before the first status).',
      labelNames: ['phase'],
      registers,
      collect() {
        this.reset();
        for (const [phase, n] of sources.roomsByPhase()) this.set({ phase }, n);
      },
    });
    new Counter({
      name: 'streamroom_informer_restarts_total',
      help: 'Watches resumed after a failure, and relists (410 Gone, idle watches).',
      registers,
      collect() {
        this.reset();
        this.inc(sources.informerRestarts());
      },
    });
  }

  /** One reconcile ended: how long it took, and how. */
  reconciled(seconds: number, result: 'success' | 'error' | 'requeue'): void {
    this.reconcileTime.observe({ controller: CONTROLLER }, seconds);
    this.reconciles.inc({ controller: CONTROLLER, result });
    if (result === 'error') this.reconcileErrors.inc({ controller: CONTROLLER });
  }

  /** One API request ended (client.ts). */
  request(r: { method: string; resource: string; code: string; seconds: number }): void {
    this.requests.inc({ code: r.code, method: r.method, resource: r.resource });
    this.requestTime.observe({ verb: r.method }, r.seconds);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
