// Pure status computation: what the room's children look like -> the StreamRoom's status.
import type { V1Condition, V1Deployment, V1Service } from '@kubernetes/client-node';
import type { Backplane } from './builders.js';
import type { ResolvedSpec } from './defaults.js';
import {
  LIVE_FIELDS,
  type MediaNetwork,
  type Phase,
  type StreamRoom,
  type StreamRoomStatus,
} from './types.js';

export interface ObservedState {
  room: StreamRoom;
  spec: ResolvedSpec;
  /** How the room's replicas share state (see builders.backplaneFor). */
  backplane: Backplane['mode'];
  deployment?: V1Deployment;
  /** The room's own Redis, for a room with a dedicated backplane. */
  redis?: V1Deployment;
  service?: V1Service;
  /** Address of a node, for NodePort rooms. */
  nodeAddress?: string;
  /** DNS suffix of the cluster, for ClusterIP URLs. */
  clusterDomain: string;
  /** SFU rooms: how browsers reach the relays, and the HostPort room's port. */
  media?: { network: MediaNetwork; port?: number };
  /** spec.hibernation: since when the room sleeps (it runs no pods, its URL reaches the waker). */
  hibernatedAt?: string;
  /** Set when the last reconcile failed: a CamelCase reason and a human message. */
  error?: { reason: string; message: string };
  keysSecretName: string;
  now: Date;
}

function withPort(scheme: string, host: string, port: number): string {
  const defaultPort = scheme === 'https' ? 443 : 80;
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `${scheme}://${h}${port === defaultPort ? '' : `:${port}`}/`;
}

/** The URL viewers open, or undefined while it is not known yet (a load balancer without an address). */
export function roomUrl(
  s: Pick<ObservedState, 'room' | 'spec' | 'service' | 'nodeAddress' | 'clusterDomain'>,
): string | undefined {
  const { room, spec } = s;
  switch (spec.expose.type) {
    case 'ClusterIP':
      return withPort(
        'http',
        `${room.metadata.name}.${room.metadata.namespace}.svc.${s.clusterDomain}`,
        spec.expose.port,
      );
    case 'NodePort': {
      const nodePort = s.service?.spec?.ports?.[0]?.nodePort;
      return nodePort && s.nodeAddress ? withPort('http', s.nodeAddress, nodePort) : undefined;
    }
    case 'LoadBalancer': {
      const ingress = s.service?.status?.loadBalancer?.ingress?.[0];
      const address = ingress?.ip || ingress?.hostname;
      return address ? withPort('http', address, spec.expose.port) : undefined;
    }
    case 'Ingress':
      return spec.expose.tlsSecretName ? `https://${spec.expose.host}/` : `http://${spec.expose.host}/`;
  }
}

type ConditionType = 'Ready' | 'Available' | 'Progressing' | 'Degraded' | 'BackplaneReady';
type Cond = { status: 'True' | 'False' | 'Unknown'; reason: string; message: string };

function deploymentCondition(d: V1Deployment | undefined, type: string) {
  return d?.status?.conditions?.find((c) => c.type === type);
}

interface Assessment {
  phase: Phase;
  conditions: Record<Exclude<ConditionType, 'BackplaneReady'>, Cond>;
}

/** Condition messages are cut to the length of an Event's (kube.ts). */
export const MAX_MESSAGE = 1024;

const T = (reason: string, message: string): Cond => ({ status: 'True', reason, message });
const F = (reason: string, message: string): Cond => ({ status: 'False', reason, message });

function assess(
  s: ObservedState,
  url: string | undefined,
  desired: number,
  ready: number,
  backplane: Cond,
): Assessment {
  const d = s.deployment;
  // HostPort rooms: every replica binds the same port of its node, so replicas need a node each.
  const hostPortNote =
    s.media?.network === 'HostPort' && desired > 1 && ready < desired
      ? ` In HostPort mode each replica needs a node of its own (the room's media port ${s.media.port} is the same on every replica); replicas beyond the free nodes stay Pending: add nodes, lower replicas.max, or use media.network TURN.`
      : '';
  const counts = `${ready} of ${desired} replicas ready${hostPortNote ? '.' + hostPortNote : ''}`;
  if (s.error) {
    const { reason, message } = s.error;
    return {
      phase: 'Failed',
      conditions: {
        Ready: F(reason, message),
        Available: ready > 0 ? T('ReplicasReady', counts) : F(reason, message),
        Progressing: F(reason, message),
        Degraded: T(reason, message),
      },
    };
  }
  if (s.spec.suspend) {
    const msg = 'The room is suspended: it runs no pods and keeps its settings and keys.';
    return {
      phase: 'Suspended',
      conditions: {
        Ready: F('Suspended', msg),
        Available: F('Suspended', msg),
        Progressing: ready > 0 ? T('ScalingDown', `Stopping the room: ${counts}`) : F('Suspended', msg),
        Degraded: F('Suspended', msg),
      },
    };
  }
  if (s.hibernatedAt) {
    const msg = `Nobody was in the room for ${s.spec.idleAfterSeconds ?? 0} s: it sleeps (no pods, no autoscaler, no Redis of its own); its URL wakes it.`;
    return {
      phase: 'Hibernating',
      conditions: {
        Ready: F('Hibernating', msg),
        Available: F('Hibernating', msg),
        Progressing:
          ready > 0 ? T('ScalingDown', `Putting the room to sleep: ${counts}`) : F('Hibernating', msg),
        Degraded: F('Hibernating', msg),
      },
    };
  }
  if (!d?.status) {
    const msg = 'Waiting for the room Deployment to be created and observed.';
    return {
      phase: 'Pending',
      conditions: {
        Ready: F('Pending', msg),
        Available: F('Pending', msg),
        Progressing: T('Pending', msg),
        Degraded: F('Pending', msg),
      },
    };
  }
  const generationSeen = (d.status.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0);
  const updated = d.status.updatedReplicas ?? 0;
  const available = d.status.availableReplicas ?? 0;
  const total = d.status.replicas ?? 0;
  const rolling = !generationSeen || updated < desired || total > updated || available < desired;
  const progressing = deploymentCondition(d, 'Progressing');
  const stuck = progressing?.status === 'False' && progressing.reason === 'ProgressDeadlineExceeded';
  const replicaFailure = deploymentCondition(d, 'ReplicaFailure');
  const problem =
    stuck && progressing
      ? { reason: 'ProgressDeadlineExceeded', message: progressing.message ?? 'The rollout is stuck.' }
      : replicaFailure?.status === 'True'
        ? { reason: 'ReplicaFailure', message: replicaFailure.message ?? 'Pods cannot be created.' }
        : undefined;
  const progressingCond = rolling
    ? T('RollingOut', `Rolling out the room: ${counts}, ${updated} up to date.`)
    : F('RolloutComplete', `All ${desired} replicas are up to date and ready.`);

  if (problem) {
    const message = `${counts}. ${problem.message}`;
    return {
      phase: ready > 0 ? 'Degraded' : 'Failed',
      conditions: {
        Ready: F(problem.reason, message),
        Available: ready > 0 ? T('ReplicasReady', counts) : F(problem.reason, message),
        Progressing: F(problem.reason, message),
        Degraded: T(problem.reason, message),
      },
    };
  }
  if (ready === 0) {
    const msg =
      backplane.status === 'False'
        ? `Waiting for the room's Redis backplane, then for its pods to become ready: ${counts}.`
        : `Waiting for the room's pods to become ready: ${counts}.`;
    return {
      phase: 'Provisioning',
      conditions: {
        Ready: F('PodsNotReady', msg),
        Available: F('PodsNotReady', msg),
        Progressing: T('RollingOut', msg),
        Degraded: F('Provisioning', msg),
      },
    };
  }
  if (!url) {
    const msg =
      s.spec.expose.type === 'LoadBalancer'
        ? 'Waiting for the load balancer to assign an address.'
        : 'Waiting for a node port and a node address.';
    return {
      phase: 'Provisioning',
      conditions: {
        Ready: F('WaitingForAddress', msg),
        Available: T('ReplicasReady', counts),
        Progressing: T('WaitingForAddress', msg),
        Degraded: F('Provisioning', msg),
      },
    };
  }
  return {
    phase: 'Ready',
    conditions: {
      Ready: T('RoomReady', `The room is open at ${url} (${counts}).`),
      Available: T('ReplicasReady', counts),
      Progressing: progressingCond,
      Degraded: F('AsExpected', 'Nothing is wrong.'),
    },
  };
}

/** Whether the room's replicas can share chat, presence and signaling. */
export function backplaneCondition(
  s: Pick<ObservedState, 'backplane' | 'redis' | 'spec' | 'hibernatedAt'>,
): Cond {
  switch (s.backplane) {
    case 'none':
      return T('NotNeeded', 'A room of at most one replica needs no backplane.');
    case 'shared':
      return T(
        'SharedRedis',
        "The room's replicas share the operator's Redis, with a key prefix of their own.",
      );
    case 'dedicated': {
      if (s.spec.suspend) return F('Suspended', 'The room is suspended; so is its Redis.');
      if (s.hibernatedAt) return F('Hibernating', 'The room hibernates: its Redis is back when it wakes.');
      const available = s.redis?.status?.availableReplicas ?? 0;
      return available > 0
        ? T('RedisReady', "The room's own Redis is running.")
        : F('RedisNotReady', "Waiting for the room's own Redis to become available.");
    }
  }
}

/**
 * Conditions as metav1.Condition: lastTransitionTime changes only when a condition's status changes.
 */
export function mergeConditions(
  previous: V1Condition[] | undefined,
  next: Record<ConditionType, Cond>,
  generation: number | undefined,
  now: Date,
): V1Condition[] {
  return (Object.keys(next) as ConditionType[]).map((type) => {
    const c = next[type];
    const old = previous?.find((p) => p.type === type);
    const lastTransitionTime = old && old.status === c.status ? old.lastTransitionTime : now;
    return {
      type,
      status: c.status,
      reason: c.reason,
      // as long as an Event's at most (a user's input can end up in a message)
      message: c.message.length > MAX_MESSAGE ? `${c.message.slice(0, MAX_MESSAGE - 1)}…` : c.message,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      lastTransitionTime,
    };
  });
}

export function computeStatus(s: ObservedState): StreamRoomStatus {
  const url = roomUrl(s);
  const desired =
    s.spec.suspend || s.hibernatedAt ? 0 : (s.deployment?.spec?.replicas ?? s.spec.replicas.min);
  const ready = s.deployment?.status?.readyReplicas ?? 0;
  const backplane = backplaneCondition(s);
  const { phase, conditions } = assess(s, url, desired, ready, backplane);
  const all: Record<ConditionType, Cond> = { ...conditions, BackplaneReady: backplane };
  const generation = s.room.metadata.generation;
  return {
    phase,
    ...(url ? { url } : {}),
    keysSecretName: s.keysSecretName,
    replicas: desired,
    readyReplicas: ready,
    ready: `${ready}/${desired}`,
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    conditions: mergeConditions(s.room.status?.conditions, all, generation, s.now),
    ...(s.media ? { media: s.media } : {}),
    ...(s.hibernatedAt ? { hibernatedAt: s.hibernatedAt } : {}),
  };
}

/** A time as Kubernetes stores it (RFC 3339, whole seconds), so a stored and a fresh status compare equal. */
function rfc3339(t: Date | string | undefined): string | undefined {
  return t === undefined ? undefined : new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Whether a newly computed status differs from the stored one (and so must be written). */
export function statusChanged(current: StreamRoomStatus | undefined, next: StreamRoomStatus): boolean {
  // the live fields are the live poller's (live.ts): the reconcile neither computes nor writes them
  const canon = (s: StreamRoomStatus | undefined) =>
    JSON.stringify(
      canonical({
        ...s,
        ...Object.fromEntries(LIVE_FIELDS.map((f) => [f, undefined])),
        conditions: s?.conditions?.map((c) => ({ ...c, lastTransitionTime: rfc3339(c.lastTransitionTime) })),
      }),
    );
  return canon(current) !== canon(next);
}

/** JSON value with object keys sorted, so that key order never counts as a change. */
export function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value instanceof Date) return value.toISOString();
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
        .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}
