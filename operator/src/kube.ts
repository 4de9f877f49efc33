// The thin layer that talks to the API server. Everything here is one API call (or a cached read);
// the decisions live in the pure modules and in the reconciler.
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import {
  CoreV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type CoreV1Event,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { FIELD_MANAGER } from './builders.js';
import { clientConfiguration, type ClientOptions } from './client.js';
import { MAX_MESSAGE } from './status.js';
import {
  API_VERSION,
  GROUP,
  KIND,
  PLURAL,
  VERSION,
  type LiveField,
  type StreamRoom,
  type StreamRoomStatus,
} from './types.js';
import type { LiveStatus } from './live.js';

/** The status code of a failed API call, when it has one. */
export function statusCode(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown } | undefined;
  const code = e?.code ?? e?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

export interface KindInfo {
  apiVersion: string;
  kind: string;
  plural: string;
}

/** Path of a kind's collection, in one namespace or in all. */
export function collectionPath(k: KindInfo, namespace?: string): string {
  const root = k.apiVersion.includes('/') ? `/apis/${k.apiVersion}` : `/api/${k.apiVersion}`;
  return `${root}${namespace ? `/namespaces/${namespace}` : ''}/${k.plural}`;
}

// (the live fields are the live poller's: never cleared here)
const CLEARED_STATUS: Record<keyof Required<Omit<StreamRoomStatus, LiveField>>, null> = {
  phase: null,
  url: null,
  keysSecretName: null,
  replicas: null,
  readyReplicas: null,
  ready: null,
  observedGeneration: null,
  conditions: null,
  media: null,
  hibernatedAt: null,
};

function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The API calls the controller makes (KubeClient; in-memory fakes in the controller's unit tests). */
export interface ControllerApi {
  readonly writes: Record<'create' | 'apply' | 'delete' | 'status' | 'live' | 'finalizers' | 'event', number>;
  list<T extends KubernetesObject>(
    k: KindInfo,
    namespace: string | undefined,
    labelSelector?: string,
  ): Promise<KubernetesListObject<T>>;
  read<T extends KubernetesObject>(obj: KubernetesObject): Promise<T | undefined>;
  create<T extends KubernetesObject>(obj: T): Promise<T>;
  apply<T extends KubernetesObject>(obj: T): Promise<T>;
  delete(obj: KubernetesObject): Promise<void>;
  patchRoomStatus(room: StreamRoom, status: StreamRoomStatus): Promise<void>;
  /** Merge-patches only the room's live fields (status.live, viewers, lastActivityTime). */
  patchRoomLive(room: { metadata: { name: string; namespace: string } }, live: LiveStatus): Promise<void>;
  /** Sets the room's finalizers, over the version given (409 when the room moved on). */
  setFinalizers(room: StreamRoom, finalizers: string[]): Promise<void>;
  event(room: StreamRoom, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
  nodeAddress(): Promise<string | undefined>;
}

export class KubeClient implements ControllerApi {
  private readonly objects: KubernetesObjectApi;
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private nodeAddressCache: { at: number; address: string | undefined } | undefined;
  /** Writes sent to the API server, by verb (for metrics and the no-write tests). */
  readonly writes = { create: 0, apply: 0, delete: 0, status: 0, live: 0, finalizers: 0, event: 0 };
  private readonly instance = os.hostname();

  constructor(kc: KubeConfig, options: ClientOptions) {
    const configuration = clientConfiguration(kc, options);
    this.objects = new KubernetesObjectApi(configuration);
    this.custom = new CustomObjectsApi(configuration);
    this.core = new CoreV1Api(configuration);
  }

  list<T extends KubernetesObject>(
    k: KindInfo,
    namespace: string | undefined,
    labelSelector?: string,
  ): Promise<KubernetesListObject<T>> {
    return this.objects.list<T>(
      k.apiVersion,
      k.kind,
      namespace,
      undefined,
      undefined,
      undefined,
      undefined,
      labelSelector,
    );
  }

  /** Reads one object; undefined when it does not exist. */
  async read<T extends KubernetesObject>(obj: KubernetesObject): Promise<T | undefined> {
    try {
      return await this.objects.read<T>({
        apiVersion: obj.apiVersion ?? '',
        kind: obj.kind ?? '',
        metadata: { name: obj.metadata?.name ?? '', namespace: obj.metadata?.namespace ?? '' },
      });
    } catch (err) {
      if (statusCode(err) === 404) return undefined;
      throw err;
    }
  }

  /** Creates an object; fails with 409 when it exists (never overwrites it). */
  async create<T extends KubernetesObject>(obj: T): Promise<T> {
    this.writes.create++;
    return this.objects.create<T>(obj, undefined, undefined, FIELD_MANAGER);
  }

  /**
   * Server-side apply with the operator's field manager, taking over fields others changed. With
   * metadata.resourceVersion set, the API server applies only over that very version (409 otherwise).
   */
  async apply<T extends KubernetesObject>(obj: T): Promise<T> {
    this.writes.apply++;
    return this.objects.patch<T>(
      obj,
      undefined,
      undefined,
      FIELD_MANAGER,
      true,
      PatchStrategy.ServerSideApply,
    );
  }

  async delete(obj: KubernetesObject): Promise<void> {
    this.writes.delete++;
    try {
      await this.objects.delete(
        obj,
        undefined,
        undefined,
        undefined,
        undefined,
        'Background',
        undefined,
        undefined,
      );
    } catch (err) {
      if (statusCode(err) !== 404) throw err;
    }
  }

  async patchRoomLive(
    room: { metadata: { name: string; namespace: string } },
    live: LiveStatus,
  ): Promise<void> {
    this.writes.live++;
    await this.mergePatchStatus(room, withoutUndefined(live));
  }

  async patchRoomStatus(room: StreamRoom, status: StreamRoomStatus): Promise<void> {
    this.writes.status++;
    // A JSON merge patch keeps fields it does not mention: clear the ones this status lacks.
    await this.mergePatchStatus(room, { ...CLEARED_STATUS, ...withoutUndefined(status) });
  }

  private async mergePatchStatus(
    room: { metadata: { name: string; namespace: string } },
    status: object,
  ): Promise<void> {
    await this.custom.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        namespace: room.metadata.namespace,
        name: room.metadata.name,
        body: { status },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  async setFinalizers(room: StreamRoom, finalizers: string[]): Promise<void> {
    this.writes.finalizers++;
    await this.custom.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        namespace: room.metadata.namespace,
        name: room.metadata.name,
        // a JSON merge patch replaces the list: the resourceVersion makes it fail rather than drop
        // a finalizer someone else added meanwhile
        body: { metadata: { finalizers, resourceVersion: room.metadata.resourceVersion } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  /** Records a Kubernetes Event on the room, shown by `kubectl describe streamroom`. */
  async event(room: StreamRoom, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    this.writes.event++;
    const now = new Date();
    const body: CoreV1Event = {
      metadata: {
        name: `${room.metadata.name}.${randomBytes(8).toString('hex')}`,
        namespace: room.metadata.namespace,
      },
      involvedObject: {
        apiVersion: API_VERSION,
        kind: KIND,
        name: room.metadata.name,
        namespace: room.metadata.namespace,
        uid: room.metadata.uid,
        resourceVersion: room.metadata.resourceVersion,
      },
      type,
      reason,
      message: message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 1)}…` : message,
      source: { component: FIELD_MANAGER },
      reportingComponent: `${GROUP}/operator`,
      reportingInstance: this.instance,
      action: reason,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    await this.core.createNamespacedEvent({ namespace: room.metadata.namespace, body });
  }

  /**
   * An address of a ready node (external IP first, then internal IP, then host name), for NodePort URLs.
   * Cached for 30 seconds; undefined when no node can be listed.
   */
  async nodeAddress(): Promise<string | undefined> {
    if (this.nodeAddressCache && Date.now() - this.nodeAddressCache.at < 30_000) {
      return this.nodeAddressCache.address;
    }
    const nodes = await this.core.listNode({ limit: 50 });
    const ready = nodes.items.filter((n) =>
      n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
    );
    let address: string | undefined;
    for (const type of ['ExternalIP', 'InternalIP', 'Hostname']) {
      address = ready.flatMap((n) => n.status?.addresses ?? []).find((a) => a.type === type)?.address;
      if (address) break;
    }
    this.nodeAddressCache = { at: Date.now(), address };
    return address;
  }
}
