/** A tiny Prometheus text-format (0.0.4) exposition: counters and gauges, optional single label. */

type Labels = Readonly<Record<string, string>>;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

class Metric {
  private readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge',
  ) {}
  add(delta: number, labels: Labels = {}): void {
    const k = labelText(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + delta);
  }
  set(value: number, labels: Labels = {}): void {
    this.values.set(labelText(labels), value);
  }
  get(labels: Labels = {}): number {
    return this.values.get(labelText(labels)) ?? 0;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`];
    for (const [k, v] of this.values) lines.push(`${this.name}${k} ${v}`);
    return lines.join('\n');
  }
}

export const REJECT_REASONS = [
  'invalid_payload',
  'unknown_event',
  'too_large',
  'rate_limited',
  'flood',
  'not_allowed',
  'chat_disabled',
  'unknown_target',
  'unavailable',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export const CONNECTION_REJECT_REASONS = [
  'bad_auth',
  'bad_broadcaster_key',
  'bad_viewer_key',
  'invalid_name',
  'room_full',
  'shutting_down',
  'unavailable',
] as const;
export type ConnectionRejectReason = (typeof CONNECTION_REJECT_REASONS)[number];

export class RoomMetrics {
  readonly viewers = new Metric(
    'streamroom_viewers_connected',
    'Viewers currently connected to the room (room-wide: the same on every replica).',
    'gauge',
  );
  readonly broadcasters = new Metric(
    'streamroom_broadcasters_connected',
    'Broadcasters currently connected to the room (0 or 1, room-wide).',
    'gauge',
  );
  readonly replicaSockets = new Metric(
    'streamroom_replica_sockets',
    "Sockets connected to this replica, by role (sum over the room's pods for totals).",
    'gauge',
  );
  /** Only rendered when the room has a backplane (ROOM_REDIS_URL). */
  readonly backplaneConnected = new Metric(
    'streamroom_backplane_connected',
    'Whether this replica is connected to the room backplane (Redis): 1 or 0.',
    'gauge',
  );
  readonly chatMessages = new Metric(
    'streamroom_chat_messages_total',
    'Chat messages accepted and relayed.',
    'counter',
  );
  readonly signalingMessages = new Metric(
    'streamroom_signaling_messages_total',
    'WebRTC signaling messages relayed.',
    'counter',
  );
  readonly rejectedMessages = new Metric(
    'streamroom_rejected_messages_total',
    'Incoming socket messages rejected, by reason.',
    'counter',
  );
  readonly rejectedConnections = new Metric(
    'streamroom_rejected_connections_total',
    'Socket connections refused, by reason.',
    'counter',
  );
  private readonly info = new Metric('streamroom_room_info', 'Room identity.', 'gauge');
  private readonly rss = new Metric(
    'process_resident_memory_bytes',
    'Resident memory size in bytes.',
    'gauge',
  );

  constructor(
    room: { name: string; namespace: string },
    private readonly withBackplane = false,
  ) {
    this.info.set(1, { room: room.name, namespace: room.namespace });
    this.viewers.set(0);
    this.broadcasters.set(0);
    this.replicaSockets.set(0, { role: 'viewer' });
    this.replicaSockets.set(0, { role: 'broadcaster' });
    this.backplaneConnected.set(0);
    this.chatMessages.add(0);
    this.signalingMessages.add(0);
    for (const r of REJECT_REASONS) this.rejectedMessages.add(0, { reason: r });
    for (const r of CONNECTION_REJECT_REASONS) this.rejectedConnections.add(0, { reason: r });
  }

  reject(reason: RejectReason): void {
    this.rejectedMessages.add(1, { reason });
  }

  render(): string {
    this.rss.set(process.memoryUsage.rss());
    const all = [
      this.info,
      this.viewers,
      this.broadcasters,
      this.replicaSockets,
      ...(this.withBackplane ? [this.backplaneConnected] : []),
      this.chatMessages,
      this.signalingMessages,
      this.rejectedMessages,
      this.rejectedConnections,
      this.rss,
    ];
    return all.map((m) => m.render()).join('\n') + '\n';
  }
}
