// The level-triggered reconcile loop: informers keep caches of rooms and their children, every change
// enqueues the room it concerns, and workers bring each room's children and status to what it wants.
import { createHmac, randomBytes } from 'node:crypto';
// (not in the package's index: the serializer its own list calls use, to give watch objects the same form)
import { ObjectSerializer } from '@kubernetes/client-node/dist/serializer.js';
import { readFileSync } from 'node:fs';
import type {
  KubeConfig,
  KubernetesObject,
  V1Deployment,
  V1EndpointSlice,
  V1Secret,
  V1Service,
} from '@kubernetes/client-node';
import {
  backplaneFor,
  CHILD_KINDS,
  PlanError,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  desiredChildren,
  keysSecretName,
  REDIS_PASSWORD_KEY,
  redisName,
  ROOM_METRICS_PORT,
  SERVICE_NAME_LABEL,
  SLICE_CONTROLLER,
  SLICE_MANAGED_BY_LABEL,
  type BuildOptions,
  type ChildKind,
  type MediaPlan,
  type Waker,
} from './builders.js';
import { resolveSpec, type ResolvedSpec } from './defaults.js';
import { hostRefusal, imageRefusal } from './policy.js';
import { choosePort, portHolders } from './ports.js';
import type { OperatorConfig } from './config.js';
import { APPLIED_HASH_ANNOTATION, drift, withHash } from './diff.js';
import { ResilientInformer, type InformerHealth } from './informer.js';
import { collectionPath, statusCode, type ControllerApi, type KindInfo } from './kube.js';
import { errorMessage, type Logger } from './log.js';
import { canonical, computeStatus, statusChanged, type ObservedState } from './status.js';
import { LivePoller, statusTime, type LiveFacts, type LiveRoom } from './live.js';
import { lookupHost, roomHosts, type WakeState } from './waker.js';
import { OperatorMetrics } from './metrics.js';
import { WorkQueue } from './workqueue.js';
import { API_VERSION, KIND, PLURAL, roomKey, type StreamRoom } from './types.js';

const ROOM: KindInfo = { apiVersion: API_VERSION, kind: KIND, plural: PLURAL };
const CHILDREN: Record<ChildKind, KindInfo> = {
  Secret: { apiVersion: 'v1', kind: 'Secret', plural: 'secrets' },
  Deployment: { apiVersion: 'apps/v1', kind: 'Deployment', plural: 'deployments' },
  Service: { apiVersion: 'v1', kind: 'Service', plural: 'services' },
  HorizontalPodAutoscaler: {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    plural: 'horizontalpodautoscalers',
  },
  Ingress: { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', plural: 'ingresses' },
  NetworkPolicy: { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', plural: 'networkpolicies' },
  // the waker's slice of a sleeping room; and (they carry the Service's labels) the EndpointSlice
  // controller's slices of the rooms' Services: where a room's ready pods are, for its /live
  EndpointSlice: { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', plural: 'endpointslices' },
};

/** A reconcile failure with a reason for the room's conditions. */
export class ReconcileError extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/** What the controller reads its objects from: a cache of one kind, kept current by watches. */
export interface Cache<T extends KubernetesObject> {
  get(name: string, namespace: string): T | undefined;
  list(): T[];
  on(verb: 'add' | 'update' | 'delete', handler: (obj: T) => void): void;
  start(): void;
  stop(): Promise<void>;
  /** Resolves once the cache reflects a complete list (again, after a relist). */
  waitForSync(): Promise<void>;
  readonly synced: boolean;
  /** How each underlying watch stands with the API server. */
  readonly health: (InformerHealth & { name: string })[];
  /** Watches resumed after failures plus relists. */
  readonly restarts: number;
}

/** Makes the cache of one kind (children: only those carrying the operator's label). */
export type CacheFactory = <T extends KubernetesObject>(kind: KindInfo, labelSelector?: string) => Cache<T>;

/** The real caches: one resilient informer per watched namespace (or one for all). */
export function informerCaches(
  kc: KubeConfig,
  api: ControllerApi,
  cfg: OperatorConfig,
  log: Logger,
): CacheFactory {
  return <T extends KubernetesObject>(kind: KindInfo, labelSelector?: string) =>
    new KindCache<T>(kc, api, kind, cfg.namespaces, labelSelector, cfg, log);
}

/** Watch objects into the form list results have (client-node's model of the kind, when it has one). */
function modelOf<T extends KubernetesObject>(kind: KindInfo): (obj: T) => T {
  const version = kind.apiVersion.split('/').pop() ?? '';
  const type = `${version.charAt(0).toUpperCase()}${version.slice(1)}${kind.kind}`;
  return (obj) => ObjectSerializer.deserialize(obj, type) as T;
}

class KindCache<T extends KubernetesObject> implements Cache<T> {
  readonly informers = new Map<string, ResilientInformer<T>>();

  constructor(
    kc: KubeConfig,
    api: ControllerApi,
    kind: KindInfo,
    namespaces: string[],
    labelSelector: string | undefined,
    cfg: OperatorConfig,
    log: Logger,
  ) {
    for (const ns of namespaces.length ? namespaces : ['']) {
      const informer = new ResilientInformer<T>(
        kc,
        collectionPath(kind, ns || undefined),
        () => api.list<T>(kind, ns || undefined, labelSelector),
        labelSelector,
        {
          idleTimeoutMs: cfg.watchIdleTimeoutSeconds * 1000,
          log,
          name: `${kind.kind}${ns ? `/${ns}` : ''}`,
          fromJson: modelOf(kind),
        },
      );
      this.informers.set(ns, informer);
    }
  }

  private informerFor(namespace: string): ResilientInformer<T> | undefined {
    return this.informers.get(namespace) ?? this.informers.get('');
  }

  get(name: string, namespace: string): T | undefined {
    return this.informerFor(namespace)?.get(name, namespace);
  }

  list(): T[] {
    return [...this.informers.values()].flatMap((i) => i.list());
  }

  on(verb: 'add' | 'update' | 'delete', handler: (obj: T) => void): void {
    this.informers.forEach((i) => i.on(verb, handler));
  }

  start(): void {
    this.informers.forEach((i) => i.start());
  }

  async stop(): Promise<void> {
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
  }

  waitForSync(): Promise<void> {
    return Promise.all([...this.informers.values()].map((i) => i.waitForSync())).then(() => undefined);
  }

  get synced(): boolean {
    return [...this.informers.values()].every((i) => i.hasSynced);
  }

  get health(): (InformerHealth & { name: string })[] {
    return [...this.informers.entries()].map(([, i]) => ({ name: i.name, ...i.state }));
  }

  get restarts(): number {
    return [...this.informers.values()].reduce((n, i) => n + i.restarts + i.relists, 0);
  }
}

/** Waits for every promise; then throws the first failure, if any (no write is left running). */
async function settleAll(promises: Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(promises)).find((r) => r.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
}

type Change = { verb: 'Created' | 'Updated' | 'Deleted'; what: string };

/** The Event reason for a reconcile's changes: Created when it created anything, else Updated, else Deleted. */
export function eventReason(changes: Change[]): Change['verb'] {
  return (
    (['Created', 'Updated', 'Deleted'] as const).find((v) => changes.some((c) => c.verb === v)) ?? 'Updated'
  );
}

/** "Created NetworkPolicy a, Secret a-keys; deleted Ingress a" */
export function eventMessage(changes: Change[]): string {
  return (['Created', 'Updated', 'Deleted'] as const)
    .map((verb) => {
      const what = changes.filter((c) => c.verb === verb).map((c) => c.what);
      return what.length ? `${verb} ${what.join(', ')}` : '';
    })
    .filter(Boolean)
    .join('; ');
}

function controllerOf(obj: KubernetesObject): { kind: string; name: string; uid: string } | undefined {
  return obj.metadata?.ownerReferences?.find(
    (r) => r.controller && r.apiVersion === API_VERSION && r.kind === KIND,
  );
}

function ownedBy(obj: KubernetesObject, room: StreamRoom): boolean {
  return controllerOf(obj)?.uid === room.metadata.uid;
}

export interface ControllerStats {
  reconciles: number;
  reconcileErrors: number;
  /** Rooms woken up by visitors (the waker). */
  wakes: number;
}

/** Rooms' users on the shared Redis (redis-acl.ts), when rooms share one. */
export interface RoomAcl {
  ensureUser(namespace: string, name: string, password: string): Promise<void>;
  deleteUser(namespace: string, name: string): Promise<boolean>;
  close(): Promise<void>;
}

/** How long a room may be on its way (Pending, Provisioning) before its status says so. */
export const STATUS_SETTLE_MS = 5000;

/** A woken room whose pods are not ready after this long gets no more waker (it is awake anyway). */
export const WAKE_TIMEOUT_MS = 5 * 60_000;

/** Secrets a room may name in iceServers[].credentialSecretRef carry this label (and are not a room's keys). */
export const ROOM_CREDENTIAL_LABEL = 'streamroom.dev/room-credential';

/** A room on the shared Redis carries it until its Redis user is deleted. */
export const ACL_FINALIZER = 'streamroom.dev/redis-acl';

/** What the controller is built from: the API, and the caches it reads (fakes in unit tests). */
export interface ControllerDeps {
  api: ControllerApi;
  caches: CacheFactory;
  /** With --shared-redis-url. */
  acl?: RoomAcl;
}

export class Controller {
  readonly kube: ControllerApi;
  readonly queue: WorkQueue;
  readonly stats: ControllerStats = { reconciles: 0, reconcileErrors: 0, wakes: 0 };
  readonly metrics: OperatorMetrics;
  /** Whether this operator holds the lease (always, without leader election). */
  private leader = true;
  private readonly rooms: Cache<StreamRoom>;
  private readonly children: Record<ChildKind, Cache<KubernetesObject>>;
  /** Ready pod addresses by room key, rebuilt when the slices changed. */
  private podAddresses: Map<string, string[]> | undefined;
  /**
   * Rooms a visitor asked to wake (the waker): since when, and whether a pod of theirs is ready
   * (`up`); until their status no longer says they sleep.
   */
  private readonly wakes = new Map<string, { since: number; up: boolean }>();
  /** Rooms found idle for their spec.hibernation.idleAfterSeconds, until their status says so. */
  private readonly sleeps = new Set<string>();
  /** Where the waker answers (its pod's address and port), once it listens. */
  private waker: Waker | undefined;
  /** The waker's index: hosts of rooms that can hibernate -> room key; rebuilt when rooms change. */
  private hostIndex: Map<string, string> | undefined;
  private warnedNoWaker = false;
  /** status.live, viewers, lastActivityTime (live.ts); absent with --live-poll-interval 0. */
  readonly live: LivePoller | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  /**
   * Writes whose watch events the caches may not have delivered yet, per room: what was written, and the
   * resourceVersion the object had before. Until an event about that object arrives and while the cache
   * still shows that version, the same write is not sent again (a reconcile right after a write would
   * otherwise repeat it from a stale cache).
   */
  private readonly recentWrites = new Map<
    string,
    Map<string, { before: string | undefined; content: string }>
  >();
  /** Since when each room has been Pending or Provisioning without its status saying so. */
  private readonly progressSince = new Map<string, number>();
  /** The last warning recorded per room, so a failing room does not fill the Event list. */
  private readonly lastWarning = new Map<string, string>();
  private started = false;
  private cachesStarted = false;
  private stopping = false;
  private leaderName: () => string | undefined = () => undefined;
  /** HostPort rooms' ports this operator gave out, by room, until the rooms' statuses show them. */
  private readonly portReservations = new Map<string, number>();
  /** The TURN gateway's secret, from which each TURN room's own key is derived. */
  private readonly turnSecret: Buffer | undefined;
  private readonly acl: RoomAcl | undefined;
  /** The password each room's Redis user was last set to (so an unchanged room costs no Redis write). */
  private readonly aclApplied = new Map<string, string>();

  constructor(
    deps: ControllerDeps,
    private readonly config: OperatorConfig,
    private readonly log: Logger,
  ) {
    this.kube = deps.api;
    this.acl = deps.acl;
    if (config.turn) {
      this.turnSecret = readFileSync(config.turn.secretFile);
      if (this.turnSecret.length < 32) {
        throw new Error(`the TURN secret in ${config.turn.secretFile} must be at least 32 bytes`);
      }
    }
    this.rooms = deps.caches<StreamRoom>(ROOM);
    const selector = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;
    this.children = Object.fromEntries(
      CHILD_KINDS.map((k) => [k, deps.caches(CHILDREN[k], selector)]),
    ) as Record<ChildKind, Cache<KubernetesObject>>;
    const dirty = () => (this.podAddresses = undefined);
    (['add', 'update', 'delete'] as const).forEach((v) => this.children.EndpointSlice.on(v, dirty));
    if (config.livePollSeconds > 0) {
      this.live = new LivePoller(
        {
          keys: () => this.rooms.list().map(roomKey),
          room: (key) => this.liveRoom(key),
          write: (key, fields) => {
            const slash = key.indexOf('/');
            return this.kube.patchRoomLive(
              { metadata: { namespace: key.slice(0, slash), name: key.slice(slash + 1) } },
              fields,
            );
          },
          observed: (key, facts) => this.noteFacts(key, facts),
          log: this.log,
        },
        { pollSeconds: config.livePollSeconds, minWriteSeconds: config.liveStatusSeconds },
      );
    }
    this.metrics = new OperatorMetrics({
      queueDepth: () => this.queue.length,
      activeWorkers: () => this.queue.active,
      roomsByPhase: () => {
        const phases = new Map<string, number>();
        for (const r of this.rooms.list())
          phases.set(r.status?.phase ?? '', (phases.get(r.status?.phase ?? '') ?? 0) + 1);
        return phases;
      },
      informerRestarts: () => this.informerRestarts,
      isLeader: () => this.leader,
      leaseName: config.leaderElection?.leaseName ?? 'streamroom-operator',
    });
    this.queue = new WorkQueue({
      workers: config.workers,
      handler: (key) => this.timedReconcile(key),
      onError: (key, err, retryInMs) =>
        this.log.warn({ room: key, error: errorMessage(err), retryInMs }, 'reconcile failed'),
      observer: this.metrics.queue,
    });

    const enqueueRoom = (room: StreamRoom) => {
      this.hostIndex = undefined;
      this.recentWrites.get(roomKey(room))?.delete('status');
      this.queue.add(roomKey(room));
    };
    this.rooms.on('add', enqueueRoom);
    this.rooms.on('update', enqueueRoom);
    this.rooms.on('delete', (room) => {
      this.hostIndex = undefined;
      this.wakes.delete(roomKey(room));
      this.sleeps.delete(roomKey(room));
      this.aclApplied.delete(roomKey(room));
      this.progressSince.delete(roomKey(room));
      this.lastWarning.delete(roomKey(room));
      this.recentWrites.delete(roomKey(room));
      this.portReservations.delete(roomKey(room));
    });
    for (const kind of CHILD_KINDS) {
      const enqueueOwner = (obj: KubernetesObject) => {
        const owner = controllerOf(obj);
        if (!owner) return;
        const key = `${obj.metadata?.namespace ?? ''}/${owner.name}`;
        this.recentWrites.get(key)?.delete(`${kind}/${obj.metadata?.name}`);
        this.queue.add(key);
      };
      this.children[kind].on('add', enqueueOwner);
      this.children[kind].on('update', enqueueOwner);
      this.children[kind].on('delete', enqueueOwner);
    }
  }

  /** Starts the informers, waits for their first list, then starts the workers and the periodic resync. */
  async start(): Promise<void> {
    await this.startCaches();
    this.startWorkers();
  }

  /**
   * Starts the informers and waits for their first list. A standby (leader election) stops here, its
   * caches kept current, so that becoming the leader only has to start the workers.
   */
  async startCaches(): Promise<void> {
    const caches = this.caches;
    caches.forEach((c) => c.start());
    await Promise.all(caches.map((c) => c.waitForSync()));
    this.cachesStarted = true;
  }

  /** Starts the workers and the periodic resync (every room is enqueued by the caches' first list). */
  startWorkers(): void {
    if (this.started || this.stopping) return;
    this.leader = true;
    this.queue.start();
    this.started = true;
    this.resyncTimer = setInterval(() => this.resync(), this.config.resyncPeriodSeconds * 1000);
    this.resyncTimer.unref();
    this.live?.start();
    this.log.info(
      {
        namespaces: this.config.namespaces.length ? this.config.namespaces : 'all',
        workers: this.config.workers,
        rooms: this.rooms.list().length,
      },
      'operator started',
    );
  }

  /** Makes this operator a standby until startWorkers(): `leaderName` says who leads meanwhile. */
  standBy(leaderName: () => string | undefined): void {
    this.leader = false;
    this.leaderName = leaderName;
  }

  private get caches(): Cache<KubernetesObject>[] {
    return [this.rooms, ...Object.values(this.children)];
  }

  /** The waker listens at this address and port: sleeping rooms' Services point there. */
  setWaker(waker: Waker): void {
    this.waker = waker;
    this.resync();
  }

  /** Whether this operator wakes rooms (it leads, and its workers run). */
  get leading(): boolean {
    return this.leader && this.started && !this.stopping;
  }

  /**
   * What the room's children are while it may hibernate: asleep once it was found idle (until a
   * visitor wakes it), with the waker's slice while asleep and until a woken room has a ready pod.
   * From that moment its URL reaches only its pods, while the room is not put back to sleep by a
   * status (or a cache of it) that still says it sleeps.
   */
  private hibernationPlan(room: StreamRoom, spec: ResolvedSpec): { asleep: boolean; waker?: Waker } {
    const key = roomKey(room);
    if (!spec.idleAfterSeconds || spec.suspend) {
      this.wakes.delete(key);
      this.sleeps.delete(key);
      return { asleep: false };
    }
    const wake = this.wakes.get(key);
    if (wake) {
      const d = this.children.Deployment.get(room.metadata.name, room.metadata.namespace) as
        V1Deployment | undefined;
      wake.up ||= !!d && ownedBy(d, room) && (d.status?.readyReplicas ?? 0) > 0 && d.spec?.replicas !== 0;
      // done once the status no longer says it sleeps; given up on after WAKE_TIMEOUT_MS
      if ((wake.up && !room.status?.hibernatedAt) || Date.now() - wake.since > WAKE_TIMEOUT_MS)
        this.wakes.delete(key);
    }
    const waking = this.wakes.get(key);
    const asleep = !waking && (this.sleeps.has(key) || !!room.status?.hibernatedAt);
    return { asleep, ...((asleep || (waking && !waking.up)) && this.waker ? { waker: this.waker } : {}) };
  }

  /** After every poll of a room's /live: a room nobody was in for idleAfterSeconds goes to sleep. */
  private noteFacts(key: string, facts: LiveFacts): void {
    const slash = key.indexOf('/');
    const room = this.rooms.get(key.slice(slash + 1), key.slice(0, slash));
    const idleAfter = room?.spec.hibernation?.idleAfterSeconds;
    if (!room || !idleAfter || room.spec.suspend || room.status?.phase !== 'Ready') return;
    if (room.status.hibernatedAt || this.wakes.has(key) || this.sleeps.has(key)) return;
    if (facts.live || facts.viewers > 0) return;
    const idleMs = Date.now() - Date.parse(facts.lastActivityTime);
    if (!(idleMs >= idleAfter * 1000)) return;
    if (!this.waker) {
      // without a waker a sleeping room's URL would not answer: it stays up
      if (!this.warnedNoWaker)
        this.log.warn(
          {
            room: key,
          },
          'rooms ask to hibernate, but the waker is off (--waker-listen, --waker-address)',
        );
      this.warnedNoWaker = true;
      return;
    }
    this.log.info({ room: key, idleSeconds: Math.round(idleMs / 1000) }, 'room idle: hibernating');
    this.sleeps.add(key);
    this.queue.add(key);
  }

  /** The waker asks to wake a room: one wake per room at a time, at most --max-waking at once. */
  wake(key: string): WakeState {
    const slash = key.indexOf('/');
    const room = this.rooms.get(key.slice(slash + 1), key.slice(0, slash));
    if (!room) return 'ready';
    if (room.spec.suspend) return 'suspended';
    const wake = this.wakes.get(key);
    if (wake) return wake.up ? 'ready' : 'waking';
    const asleep = this.sleeps.has(key) || !!room.status?.hibernatedAt;
    if (!asleep) return room.status?.phase === 'Ready' ? 'ready' : 'waking';
    if ([...this.wakes.values()].filter((w) => !w.up).length >= this.config.maxWaking) return 'busy';
    this.log.info({ room: key }, 'waking room');
    this.stats.wakes++;
    this.sleeps.delete(key);
    this.wakes.set(key, { since: Date.now(), up: false });
    this.queue.add(key);
    return 'waking';
  }

  /** The room (key) a visitor's Host header names, among rooms that can hibernate. */
  roomForHost(host: string): string | undefined {
    if (!this.hostIndex) {
      const index = new Map<string, string>();
      for (const room of this.rooms.list()) {
        if (!room.spec.hibernation?.idleAfterSeconds) continue;
        const service = this.children.Service.get(room.metadata.name, room.metadata.namespace) as
          V1Service | undefined;
        const hosts = roomHosts({
          name: room.metadata.name,
          namespace: room.metadata.namespace,
          ...(room.status?.url ? { url: room.status.url } : {}),
          exposeType: room.spec.expose?.type ?? 'ClusterIP',
          port: room.spec.expose?.port ?? 80,
          ...(service?.spec?.ports?.[0]?.nodePort ? { nodePort: service.spec.ports[0].nodePort } : {}),
          ...(room.spec.expose?.host ? { ingressHost: room.spec.expose.host } : {}),
          clusterDomain: this.config.clusterDomain,
        });
        for (const h of hosts) if (!index.has(h)) index.set(h, roomKey(room));
      }
      this.hostIndex = index;
    }
    return lookupHost(this.hostIndex, host);
  }

  /** A room as the live poller sees it: its status, whether it serves, and where to ask. */
  private liveRoom(key: string): LiveRoom | undefined {
    const slash = key.indexOf('/');
    const namespace = key.slice(0, slash);
    const name = key.slice(slash + 1);
    const room = this.rooms.get(name, namespace);
    if (!room || room.metadata.deletionTimestamp) return undefined;
    const phase = room.status?.phase;
    const serving =
      !room.spec.suspend &&
      (phase === 'Ready' || phase === 'Degraded') &&
      (room.status?.readyReplicas ?? 0) > 0;
    let url: string | undefined;
    if (serving) {
      const template = this.config.liveUrlTemplate;
      if (template) {
        url = template
          .replaceAll('{namespace}', encodeURIComponent(namespace))
          .replaceAll('{name}', encodeURIComponent(name));
      } else {
        // any ready pod answers for the whole room (its /live is room-wide); a different one each time
        const addresses = this.readyPods().get(key) ?? [];
        const address = addresses[Math.floor(Math.random() * addresses.length)];
        if (address) {
          const host = address.includes(':') ? `[${address}]` : address;
          url = `http://${host}:${ROOM_METRICS_PORT}/live`;
        }
      }
    }
    return { key, status: room.status, serving, url };
  }

  /** Ready pod addresses of every room's Service, by room key. */
  private readyPods(): Map<string, string[]> {
    if (this.podAddresses) return this.podAddresses;
    const byRoom = new Map<string, string[]>();
    for (const slice of this.children.EndpointSlice.list() as V1EndpointSlice[]) {
      // the EndpointSlice controller's (the room's pods), not the waker's
      if (slice.metadata?.labels?.[SLICE_MANAGED_BY_LABEL] !== SLICE_CONTROLLER) continue;
      const service = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
      if (!service) continue;
      const key = `${slice.metadata?.namespace ?? ''}/${service}`;
      const list = byRoom.get(key) ?? [];
      for (const e of slice.endpoints ?? []) {
        if (e.conditions?.ready === false || e.conditions?.terminating) continue;
        if (e.addresses[0]) list.push(e.addresses[0]);
      }
      byRoom.set(key, list);
    }
    this.podAddresses = byRoom;
    return byRoom;
  }

  /**
   * Whether the operator is doing its work: started, every cache synced, and no watch failing to reach
   * the API server. (The readiness probe uses it; liveness does not, so an API outage never gets the
   * operator restarted.)
   */
  get readiness(): { ready: boolean; reason: string } {
    if (!this.cachesStarted) return { ready: false, reason: 'starting: caches not synced yet' };
    const failing = this.caches.flatMap((c) => c.health).find((h) => h.failing);
    if (failing)
      return { ready: false, reason: `API server unreachable (${failing.name}: ${failing.lastError})` };
    // A standby is ready too (its caches are warm; a rolling update waits for it): the body says which.
    if (!this.leader) return { ready: true, reason: `standby (leader: ${this.leaderName() || 'none yet'})` };
    return { ready: true, reason: 'ok' };
  }

  get ready(): boolean {
    return this.readiness.ready;
  }

  get informerRestarts(): number {
    return this.caches.reduce((n, c) => n + c.restarts, 0);
  }

  /** Enqueues every known room (level-triggered: a periodic full pass repairs anything missed). */
  resync(): void {
    for (const room of this.rooms.list()) this.queue.add(roomKey(room));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.syncWake?.();
    clearInterval(this.resyncTimer);
    this.live?.stop();
    await this.queue.shutdown();
    await Promise.all(this.caches.map((c) => c.stop()));
    await this.acl?.close();
    this.log.info('operator stopped');
  }

  private syncWake: (() => void) | undefined;
  /**
   * Waits until every cache is synced: a reconcile never decides from a cache that is being relisted.
   * False when the controller is stopping meanwhile.
   */
  private async cachesSynced(): Promise<boolean> {
    while (!this.stopping && !this.caches.every((c) => c.synced)) {
      await Promise.race([
        Promise.all(this.caches.map((c) => c.waitForSync())),
        new Promise<void>((r) => (this.syncWake = r)),
      ]);
    }
    return !this.stopping;
  }

  private async timedReconcile(key: string): Promise<void> {
    const started = performance.now();
    try {
      await this.reconcile(key);
      this.metrics.reconciled((performance.now() - started) / 1000, 'success');
    } catch (err) {
      this.metrics.reconciled(
        (performance.now() - started) / 1000,
        statusCode(err) === 409 ? 'requeue' : 'error',
      );
      throw err;
    }
  }

  /** Brings one room's children and status to what the room wants. Throws to be retried with backoff. */
  async reconcile(key: string): Promise<void> {
    const slash = key.indexOf('/');
    const namespace = key.slice(0, slash);
    const name = key.slice(slash + 1);
    if (!(await this.cachesSynced())) return;
    const room = this.rooms.get(name, namespace);
    if (!room) return;
    // Owned children go with the garbage collector; the room's Redis user goes here.
    if (room.metadata.deletionTimestamp) return this.releaseAcl(room);
    this.stats.reconciles++;
    const log = this.log.child({ room: key });
    let spec;
    let backplane;
    let media: MediaPlan | undefined;
    let hibernation: { asleep: boolean; waker?: Waker } | undefined;
    const observed: { Deployment?: V1Deployment; Service?: V1Service; redis?: V1Deployment } = {};
    try {
      // The keys are read from the API when the cache lacks the Secret (a cache may lag behind): keys
      // are never generated for a Secret that exists.
      const secretRef = {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: keysSecretName(name), namespace },
      };
      const options: BuildOptions = {
        defaultImage: this.config.defaultImage,
        redisImage: this.config.redisImage,
        ...(this.config.sharedRedisUrl ? { sharedRedisUrl: this.config.sharedRedisUrl } : {}),
        ...(this.config.ingressNamespace ? { ingressNamespace: this.config.ingressNamespace } : {}),
        trustedProxies: this.config.trustedProxies,
      };
      spec = resolveSpec(room, options.defaultImage, this.config.mediaNetwork);
      backplane = backplaneFor(spec, options).mode;
      // what the tenant may not have: nothing is created for it, the status and an Event say why
      this.checkPolicy(room, spec);
      await this.checkCredentials(room, spec);
      options.media = this.mediaInputs(room, spec);
      hibernation = this.hibernationPlan(room, spec);
      options.hibernation = hibernation;
      const existingSecret = (await this.ownedChild(room, 'Secret', secretRef)) as V1Secret | undefined;
      const desired = desiredChildren(room, options, existingSecret, () =>
        randomBytes(24).toString('base64url'),
      );
      media = desired.media;
      // On the shared Redis the room's user must exist before its pods get its URL.
      if (desired.backplane.mode === 'shared') {
        await this.ensureAcl(room, desired.apply.find((o) => o.kind === 'Secret') as V1Secret);
      } else await this.releaseAcl(room);
      // Check every name first (concurrently), so that a room whose names are taken creates nothing.
      const actuals = await Promise.all(
        desired.apply.map((obj) =>
          obj.kind === 'Secret' ? existingSecret : this.ownedChild(room, obj.kind as ChildKind, obj),
        ),
      );
      const changes: Change[] = [];
      const applyChild = async (obj: KubernetesObject, actual: KubernetesObject | undefined) => {
        const kind = obj.kind as ChildKind;
        const target = withHash(obj);
        let current = actual;
        const writeKey = `${kind}/${obj.metadata?.name}`;
        const content = target.metadata?.annotations?.[APPLIED_HASH_ANNOTATION] ?? '';
        const differs = drift(target, actual);
        if (differs !== undefined && !this.justWritten(key, writeKey, actual, content)) {
          log.debug({ kind, name: obj.metadata?.name, differs }, 'applying child');
          current = await this.write(kind, target, actual);
          this.remember(key, writeKey, actual, content);
          const verb = actual ? 'Updated' : 'Created';
          log.info({ kind, name: obj.metadata?.name }, `${verb.toLowerCase()} child`);
          changes.push({ verb, what: `${kind} ${obj.metadata?.name}` });
        }
        const childName = obj.metadata?.name;
        if (kind === 'Deployment' && childName === name) observed.Deployment = current as V1Deployment;
        if (kind === 'Deployment' && childName === redisName(name)) observed.redis = current as V1Deployment;
        if (kind === 'Service' && childName === name) observed.Service = current as V1Service;
      };
      // The fence and the keys first (no pod of the room runs without either), then the rest at once.
      const first = (o: KubernetesObject) => o.kind === 'NetworkPolicy' || o.kind === 'Secret';
      try {
        for (const phase of [first, (o: KubernetesObject) => !first(o)]) {
          await settleAll(
            desired.apply.flatMap((obj, i) => (phase(obj) ? [applyChild(obj, actuals[i])] : [])),
          );
        }
        await settleAll(
          desired.absent.map(async ({ kind, name: childName }) => {
            const actual = this.children[kind].get(childName, namespace);
            if (!actual || !ownedBy(actual, room)) return;
            await this.kube.delete({ ...actual, apiVersion: CHILDREN[kind].apiVersion, kind });
            log.info({ kind, name: childName }, 'deleted child');
            changes.push({ verb: 'Deleted', what: `${kind} ${childName}` });
          }),
        );
      } finally {
        // One Event for what this reconcile changed (also when a later write failed), in build order.
        const order = (c: Change) =>
          desired.apply.findIndex((o) => `${o.kind} ${o.metadata?.name}` === c.what);
        changes.sort((a, b) => order(a) - order(b));
        if (changes.length) await this.record(room, 'Normal', eventReason(changes), eventMessage(changes));
      }
      const nodeAddress =
        spec.expose.type === 'NodePort' ? (this.config.nodeAddress ?? (await this.nodeAddress())) : undefined;
      await this.writeStatus(room, {
        spec,
        backplane,
        media,
        ...observed,
        ...(nodeAddress ? { nodeAddress } : {}),
        ...(hibernation?.asleep ? { hibernatedAt: room.status?.hibernatedAt ?? statusTime(Date.now()) } : {}),
      });
      // the status now says it (or the cache will): the decision lives there from now on
      this.sleeps.delete(key);
      this.lastWarning.delete(key);
    } catch (err) {
      if (statusCode(err) === 409) {
        // A write based on an older version than the API server's (a cache that lags): retried at
        // once with what the API server has; nothing for the user to see.
        log.info({ error: errorMessage(err) }, 'conflict, retrying');
        throw err;
      }
      this.stats.reconcileErrors++;
      const reason =
        err instanceof ReconcileError || err instanceof PlanError ? err.reason : 'ReconcileFailed';
      const message = errorMessage(err);
      await this.record(room, 'Warning', reason, message, true);
      if (spec && backplane) {
        const hibernatedAt = hibernation?.asleep ? room.status?.hibernatedAt : undefined;
        await this.writeStatus(room, {
          spec,
          backplane,
          ...observed,
          ...(hibernatedAt ? { hibernatedAt } : {}),
          error: { reason, message },
        }).catch((e: unknown) => log.warn({ error: errorMessage(e) }, 'could not write status'));
      }
      throw err;
    }
  }

  /**
   * Writes one child. The keys Secret is created only when absent (a create fails if it exists) and
   * otherwise applied only over the version it was built from, so its keys are never replaced by
   * values built from a stale or empty cache; the other children are applied as they are.
   */
  private write(kind: ChildKind, target: KubernetesObject, actual: KubernetesObject | undefined) {
    if (kind !== 'Secret') return this.kube.apply(target);
    if (!actual) return this.kube.create(target);
    const resourceVersion = actual.metadata?.resourceVersion;
    return this.kube.apply({ ...target, metadata: { ...target.metadata, resourceVersion } });
  }

  /** The cluster admin's policy on images and Ingress hosts. */
  private checkPolicy(room: StreamRoom, spec: ReturnType<typeof resolveSpec>): void {
    const { policy, defaultImage } = this.config;
    const image = imageRefusal(policy, spec.image, defaultImage);
    if (image) throw new ReconcileError('ImageNotAllowed', image);
    if (spec.expose.type === 'Ingress' && spec.expose.host) {
      const host = hostRefusal(policy, room.metadata.namespace, spec.expose.host);
      if (host) throw new ReconcileError('HostNotAllowed', host);
    }
  }

  /**
   * A room may hand its visitors TURN credentials only from Secrets made for that (labelled
   * streamroom.dev/room-credential=true): never another room's keys, nor any other Secret.
   */
  private async checkCredentials(room: StreamRoom, spec: ReturnType<typeof resolveSpec>): Promise<void> {
    for (const [i, server] of spec.iceServers.entries()) {
      const ref = server.credentialSecretRef;
      if (!ref) continue;
      const where = `iceServers[${i}].credentialSecretRef`;
      const secret = await this.kube.read<V1Secret>({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: ref.name, namespace: room.metadata.namespace },
      });
      if (!secret)
        throw new ReconcileError('CredentialNotFound', `${where}: Secret ${ref.name} does not exist`);
      const labels = secret.metadata?.labels ?? {};
      if (labels[MANAGED_BY_LABEL] === MANAGED_BY || labels[ROOM_CREDENTIAL_LABEL] !== 'true') {
        throw new ReconcileError(
          'CredentialNotAllowed',
          `${where} names Secret ${ref.name}, which a room may not read: label a Secret made for it ${ROOM_CREDENTIAL_LABEL}=true (a room's keys never qualify)`,
        );
      }
      if (secret.data?.[ref.key] === undefined) {
        throw new ReconcileError('CredentialNotFound', `${where}: Secret ${ref.name} has no key ${ref.key}`);
      }
    }
  }

  /** The room's own user on the shared Redis, limited to its key prefix (and the finalizer that deletes it). */
  private async ensureAcl(room: StreamRoom, secret: V1Secret): Promise<void> {
    if (!this.acl) return;
    const key = roomKey(room);
    const finalizers = room.metadata.finalizers ?? [];
    if (!finalizers.includes(ACL_FINALIZER))
      await this.kube.setFinalizers(room, [...finalizers, ACL_FINALIZER]);
    const password = Buffer.from(secret.data?.[REDIS_PASSWORD_KEY] ?? '', 'base64').toString();
    if (this.aclApplied.get(key) === password) return;
    try {
      await this.acl.ensureUser(room.metadata.namespace, room.metadata.name, password);
    } catch (err) {
      throw new ReconcileError(
        'SharedRedisUnavailable',
        `could not set the room's user on the shared Redis: ${errorMessage(err)}`,
      );
    }
    this.aclApplied.set(key, password);
  }

  /** Deletes the room's user on the shared Redis, if it had one, and then the finalizer. */
  private async releaseAcl(room: StreamRoom): Promise<void> {
    const finalizers = room.metadata.finalizers ?? [];
    if (!finalizers.includes(ACL_FINALIZER)) return;
    if (this.acl) {
      try {
        await this.acl.deleteUser(room.metadata.namespace, room.metadata.name);
      } catch (err) {
        throw new ReconcileError(
          'SharedRedisUnavailable',
          `could not delete the room's user on the shared Redis: ${errorMessage(err)}`,
        );
      }
    } else {
      this.log.warn(
        {
          room: roomKey(room),
        },
        'no shared Redis configured any more: leaving its room user in place',
      );
    }
    this.aclApplied.delete(roomKey(room));
    await this.kube.setFinalizers(
      room,
      finalizers.filter((f) => f !== ACL_FINALIZER),
    );
  }

  /** What an SFU room's network needs: a port of its own (HostPort), or its key for the TURN gateway. */
  private mediaInputs(room: StreamRoom, spec: ReturnType<typeof resolveSpec>): BuildOptions['media'] {
    const key = roomKey(room);
    const inputs: NonNullable<BuildOptions['media']> = { defaultNetwork: this.config.mediaNetwork };
    if (spec.media.mode !== 'SFU' || spec.media.network !== 'HostPort') {
      this.portReservations.delete(key);
    } else {
      const port = this.mediaPort(room);
      if (port !== undefined) inputs.port = port;
    }
    if (spec.media.network === 'TURN' && this.config.turn && this.turnSecret) {
      inputs.turn = {
        urls: this.config.turn.urls,
        roomKey: createHmac('sha256', this.turnSecret).update(key).digest('base64url'),
      };
    }
    return inputs;
  }

  /** The room's HostPort port: the one in its status while nobody else holds it, else a free one. */
  private mediaPort(room: StreamRoom): number | undefined {
    const key = roomKey(room);
    const holders = portHolders(
      this.rooms.list().map((r) => ({
        key: roomKey(r),
        port: this.heldPort(r),
        created: r.metadata.creationTimestamp ? new Date(r.metadata.creationTimestamp).toISOString() : '',
      })),
    );
    for (const [other, port] of this.portReservations) {
      if (other !== key && !holders.has(port)) holders.set(port, other);
    }
    const current = this.portReservations.get(key) ?? this.heldPort(room);
    const port = choosePort(key, current, holders, this.config.mediaPortRange);
    if (port === undefined) this.portReservations.delete(key);
    else this.portReservations.set(key, port);
    return port;
  }

  /** The HostPort port a room holds: in its status, or (before its status says so) in its Deployment. */
  private heldPort(room: StreamRoom): number | undefined {
    if (room.status?.media?.network === 'HostPort') return room.status.media.port;
    const d = this.children.Deployment.get(room.metadata.name, room.metadata.namespace) as
      V1Deployment | undefined;
    if (!d || !ownedBy(d, room)) return undefined;
    return d.spec?.template.spec?.containers.flatMap((c) => c.ports ?? []).find((p) => p.name === 'media-udp')
      ?.hostPort;
  }

  /** The child from the cache, or from the API when the cache lacks it; refuses one the room does not own. */
  private async ownedChild(room: StreamRoom, kind: ChildKind, obj: KubernetesObject) {
    const name = obj.metadata?.name ?? '';
    const actual =
      this.children[kind].get(name, room.metadata.namespace) ?? (await this.kube.read({ ...obj }));
    if (actual && !ownedBy(actual, room)) {
      throw new ReconcileError(
        'NameConflict',
        `${kind} ${name} already exists and does not belong to this StreamRoom; rename or remove it`,
      );
    }
    return actual;
  }

  private async nodeAddress(): Promise<string | undefined> {
    try {
      return await this.kube.nodeAddress();
    } catch (err) {
      this.log.warn({ error: errorMessage(err) }, 'could not list nodes for a NodePort URL');
      return undefined;
    }
  }

  private async writeStatus(
    room: StreamRoom,
    s: {
      spec: ObservedState['spec'];
      backplane: ObservedState['backplane'];
      media?: MediaPlan;
      Deployment?: V1Deployment;
      Service?: V1Service;
      redis?: V1Deployment;
      nodeAddress?: string;
      hibernatedAt?: string;
      error?: { reason: string; message: string };
    },
  ): Promise<void> {
    const status = computeStatus({
      ...(s.hibernatedAt ? { hibernatedAt: s.hibernatedAt } : {}),
      room,
      spec: s.spec,
      backplane: s.backplane,
      ...(s.redis ? { redis: s.redis } : {}),
      ...(s.Deployment ? { deployment: s.Deployment } : {}),
      ...(s.Service ? { service: s.Service } : {}),
      ...(s.nodeAddress ? { nodeAddress: s.nodeAddress } : {}),
      ...(s.error ? { error: s.error } : {}),
      ...(s.media?.mode === 'SFU'
        ? {
            media: {
              network: s.media.network,
              ...(s.media.network === 'HostPort' ? { port: s.media.port } : {}),
            },
          }
        : {}),
      clusterDomain: this.config.clusterDomain,
      keysSecretName: keysSecretName(room.metadata.name),
      now: new Date(),
    });
    if (!statusChanged(room.status, status)) {
      this.progressSince.delete(roomKey(room));
      return;
    }
    // A room on its way (Pending, Provisioning) gets its status once it has been on its way for a
    // while: one that turns Ready within that time is written once, when it settles.
    if (status.phase === 'Pending' || status.phase === 'Provisioning') {
      const since = this.progressSince.get(roomKey(room)) ?? Date.now();
      this.progressSince.set(roomKey(room), since);
      const wait = since + STATUS_SETTLE_MS - Date.now();
      if (wait > 0) {
        this.queue.addAfter(roomKey(room), wait);
        return;
      }
    } else {
      this.progressSince.delete(roomKey(room));
    }
    const conditions = status.conditions?.map(({ lastTransitionTime: _t, ...c }) => c);
    const content = JSON.stringify(canonical({ ...status, conditions }));
    if (this.justWritten(roomKey(room), 'status', room, content)) return;
    await this.kube.patchRoomStatus(room, status);
    this.log.debug({ room: roomKey(room), before: room.status, after: status }, 'status written');
    this.remember(roomKey(room), 'status', room, content);
    if (status.phase !== room.status?.phase) {
      this.log.info({ room: roomKey(room), from: room.status?.phase, to: status.phase }, 'phase changed');
      if (status.phase === 'Ready' || status.phase === 'Suspended' || status.phase === 'Hibernating') {
        const ready = status.conditions?.find((c) => c.type === 'Ready');
        await this.record(room, 'Normal', status.phase, ready?.message ?? status.phase);
      } else if (status.phase === 'Degraded') {
        const degraded = status.conditions?.find((c) => c.type === 'Degraded');
        await this.record(room, 'Warning', 'Degraded', degraded?.message ?? 'Degraded', true);
      }
    }
  }

  /** Whether this very content was just written and the cache has not caught up with the write yet. */
  private justWritten(
    room: string,
    what: string,
    cached: KubernetesObject | undefined,
    content: string,
  ): boolean {
    const w = this.recentWrites.get(room)?.get(what);
    if (!w) return false;
    if (w.before !== cached?.metadata?.resourceVersion) {
      this.recentWrites.get(room)?.delete(what); // the cache has moved on: compare against it from now on
      return false;
    }
    return w.content === content;
  }

  private remember(room: string, what: string, before: KubernetesObject | undefined, content: string): void {
    let writes = this.recentWrites.get(room);
    if (!writes) this.recentWrites.set(room, (writes = new Map()));
    writes.set(what, { before: before?.metadata?.resourceVersion, content });
  }

  /** Records an Event; a warning is recorded once until a different one (or success) comes. */
  private async record(
    room: StreamRoom,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
    dedupe = false,
  ) {
    const key = roomKey(room);
    if (dedupe) {
      // Once per distinct problem: not again on a retry, nor after a restart when status already shows it.
      const shown = room.status?.conditions?.some(
        (c) => c.type === 'Degraded' && c.status === 'True' && c.reason === reason && c.message === message,
      );
      if (shown || this.lastWarning.get(key) === `${reason}:${message}`) return;
      this.lastWarning.set(key, `${reason}:${message}`);
    }
    try {
      await this.kube.event(room, type, reason, message);
    } catch (err) {
      this.log.warn({ room: key, reason, error: errorMessage(err) }, 'could not record event');
    }
  }
}
