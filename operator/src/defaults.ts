// Defaults for every optional StreamRoom field. The API server applies the same defaults from the CRD
// schema (a unit test checks that both agree); the operator applies them again so that its pure functions
// never see a missing field, whatever wrote the object.
import type { V1ResourceRequirements } from '@kubernetes/client-node';
import { parseQuantity } from './quantity.js';
import type { ExposeType, IceServerSpec, MediaMode, MediaNetwork, StreamRoom } from './types.js';

export interface ResolvedSpec {
  title: string;
  image: string;
  private: boolean;
  replicas: { min: number; max: number };
  autoscaling: { targetCPUUtilizationPercentage: number; scaleDownStabilizationWindowSeconds: number };
  resources: V1ResourceRequirements;
  expose: {
    type: ExposeType;
    port: number;
    nodePort?: number;
    host?: string;
    ingressClassName?: string;
    tlsSecretName?: string;
  };
  chat: { enabled: boolean; historySize: number; maxMessageLength: number; messagesPerMinute: number };
  /** network: SFU rooms only. */
  media: { mode: MediaMode; network?: MediaNetwork };
  maxViewers: number;
  iceServers: IceServerSpec[];
  suspend: boolean;
  /** Seconds without anybody in the room before it hibernates; undefined: never. */
  idleAfterSeconds: number | undefined;
}

export const DEFAULTS = {
  private: false,
  replicas: { min: 1, max: 10 },
  autoscaling: { targetCPUUtilizationPercentage: 60, scaleDownStabilizationWindowSeconds: 300 },
  expose: { type: 'ClusterIP' as ExposeType, port: 80 },
  chat: { enabled: true, historySize: 50, maxMessageLength: 500, messagesPerMinute: 20 },
  media: { mode: 'SFU' as MediaMode },
  /** By media mode: what one relay replica carries, and what a broadcaster's upload carries. */
  maxViewers: { SFU: 500, PeerToPeer: 20 } satisfies Record<MediaMode, number>,
  suspend: false,
  cpuRequest: '100m',
  memoryRequest: '128Mi',
  memoryLimit: '256Mi',
};

/**
 * Fills the resource defaults: a CPU and a memory request (the autoscaler needs the CPU request) and,
 * when no limits are given at all, a memory limit (256Mi, or the memory request when that is higher). A request the user left out but whose limit is given
 * defaults to that limit, as Kubernetes itself does.
 */
export function resolveResources(resources: V1ResourceRequirements | undefined): V1ResourceRequirements {
  const userLimits: Record<string, string> = { ...resources?.limits };
  const requests = { ...resources?.requests };
  requests.cpu ??= userLimits.cpu ?? DEFAULTS.cpuRequest;
  requests.memory ??= userLimits.memory ?? DEFAULTS.memoryRequest;
  if (resources?.limits) return { requests, limits: userLimits };
  // The default memory limit never sits below the memory request.
  const memoryLimit =
    (parseQuantity(requests.memory) ?? 0) > (parseQuantity(DEFAULTS.memoryLimit) ?? 0)
      ? requests.memory
      : DEFAULTS.memoryLimit;
  return { requests, limits: { memory: memoryLimit } };
}

/** `defaultNetwork`: the operator's --media-network, for SFU rooms that name none. */
export function resolveSpec(
  room: StreamRoom,
  defaultImage: string,
  defaultNetwork: MediaNetwork = 'HostPort',
): ResolvedSpec {
  const s = room.spec ?? {};
  const mode = s.media?.mode ?? DEFAULTS.media.mode;
  return {
    title: s.title || room.metadata.name,
    image: s.image || defaultImage,
    private: s.private ?? DEFAULTS.private,
    replicas: {
      min: s.replicas?.min ?? DEFAULTS.replicas.min,
      max: s.replicas?.max ?? DEFAULTS.replicas.max,
    },
    autoscaling: {
      targetCPUUtilizationPercentage:
        s.autoscaling?.targetCPUUtilizationPercentage ?? DEFAULTS.autoscaling.targetCPUUtilizationPercentage,
      scaleDownStabilizationWindowSeconds:
        s.autoscaling?.scaleDownStabilizationWindowSeconds ??
        DEFAULTS.autoscaling.scaleDownStabilizationWindowSeconds,
    },
    resources: resolveResources(s.resources),
    expose: {
      ...s.expose,
      type: s.expose?.type ?? DEFAULTS.expose.type,
      port: s.expose?.port ?? DEFAULTS.expose.port,
    },
    chat: {
      enabled: s.chat?.enabled ?? DEFAULTS.chat.enabled,
      historySize: s.chat?.historySize ?? DEFAULTS.chat.historySize,
      maxMessageLength: s.chat?.maxMessageLength ?? DEFAULTS.chat.maxMessageLength,
      messagesPerMinute: s.chat?.messagesPerMinute ?? DEFAULTS.chat.messagesPerMinute,
    },
    media: mode === 'SFU' ? { mode, network: s.media?.network ?? defaultNetwork } : { mode },
    maxViewers: s.maxViewers ?? DEFAULTS.maxViewers[mode],
    iceServers: s.iceServers ?? [],
    suspend: s.suspend ?? DEFAULTS.suspend,
    idleAfterSeconds: s.hibernation?.idleAfterSeconds,
  };
}
