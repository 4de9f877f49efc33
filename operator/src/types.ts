// The StreamRoom API (streamroom.dev/v1alpha1) as TypeScript types. The CRD in crds/ is the source of
// truth for validation and defaults; these types describe the same fields.
import type { V1Condition, V1ObjectMeta, V1ResourceRequirements } from '@kubernetes/client-node';

export const GROUP = 'streamroom.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'StreamRoom';
export const PLURAL = 'streamrooms';

export type ExposeType = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'Ingress';

/** SFU: through the room pod's media relay; PeerToPeer: from the broadcaster's browser to each viewer. */
export type MediaMode = 'SFU' | 'PeerToPeer';

/**
 * How browsers reach the relay of each pod of an SFU room: the node's address and a port the operator
 * gave the room (HostPort), or the cluster's TURN gateway, which reaches pods on their pod IPs (TURN).
 */
export type MediaNetwork = 'HostPort' | 'TURN';

export interface IceServerSpec {
  urls: string[];
  username?: string;
  credentialSecretRef?: { name: string; key: string };
}

export interface StreamRoomSpec {
  title?: string;
  image?: string;
  private?: boolean;
  replicas?: { min?: number; max?: number };
  autoscaling?: { targetCPUUtilizationPercentage?: number; scaleDownStabilizationWindowSeconds?: number };
  resources?: V1ResourceRequirements;
  expose?: {
    type?: ExposeType;
    port?: number;
    nodePort?: number;
    host?: string;
    ingressClassName?: string;
    tlsSecretName?: string;
  };
  chat?: { enabled?: boolean; historySize?: number; maxMessageLength?: number; messagesPerMinute?: number };
  media?: { mode?: MediaMode; network?: MediaNetwork };
  maxViewers?: number;
  iceServers?: IceServerSpec[];
  suspend?: boolean;
  /** Sleep when nobody came for idleAfterSeconds (unset: never). */
  hibernation?: { idleAfterSeconds?: number };
}

export type Phase =
  'Pending' | 'Provisioning' | 'Ready' | 'Degraded' | 'Suspended' | 'Hibernating' | 'Failed';

export interface StreamRoomStatus {
  phase?: Phase;
  url?: string;
  keysSecretName?: string;
  replicas?: number;
  readyReplicas?: number;
  ready?: string;
  observedGeneration?: number;
  conditions?: V1Condition[];
  /** SFU rooms: how browsers reach the relays, and (HostPort) the port the operator gave the room. */
  media?: { network: MediaNetwork; port?: number };
  /** While the room hibernates: since when. */
  hibernatedAt?: string;
  /** A broadcaster is on air (from the room's GET /live; written by the live poller, live.ts). */
  live?: boolean;
  /** Viewers in the room, across its replicas (live poller). */
  viewers?: number;
  /** When somebody was last in the room (RFC 3339; live poller). */
  lastActivityTime?: string;
}

/** The status fields only the live poller writes (the reconcile's status patch leaves them alone). */
export const LIVE_FIELDS = ['live', 'viewers', 'lastActivityTime'] as const;
export type LiveField = (typeof LIVE_FIELDS)[number];

export interface StreamRoom {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: V1ObjectMeta & { name: string; namespace: string };
  spec: StreamRoomSpec;
  status?: StreamRoomStatus;
}

/** A room's key for the work queue and logs: namespace/name. */
export function roomKey(room: { metadata: { namespace?: string; name?: string } }): string {
  return `${room.metadata.namespace ?? ''}/${room.metadata.name ?? ''}`;
}
