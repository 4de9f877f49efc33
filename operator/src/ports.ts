// Media ports of HostPort rooms, in the manner of Agones: every SFU room on the HostPort network gets
// one port number from the operator's range (UDP for media, TCP with the same number for ICE-TCP),
// unique in the cluster, kept in the room's status so it survives restarts of the operator. A pure
// function decides; the controller keeps the reservations it has made but not yet seen in a status.

export interface PortRange {
  from: number;
  to: number;
}

/** Parses "20000-29999". */
export function parsePortRange(text: string): PortRange {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(text.trim());
  const from = Number(m?.[1]);
  const to = Number(m?.[2]);
  if (!m || from < 1024 || to > 65535 || from > to) {
    throw new Error(
      `--media-port-range must look like 20000-29999 (from >= 1024, to <= 65535), got "${text}"`,
    );
  }
  return { from, to };
}

/**
 * The port for `room`: the one it has when nobody else holds it, else the lowest free one in the range;
 * undefined when the range is full. `taken` maps ports to the room holding them (ties already decided:
 * the room that had a port first keeps it).
 */
export function choosePort(
  room: string,
  current: number | undefined,
  taken: ReadonlyMap<number, string>,
  range: PortRange,
): number | undefined {
  const free = (p: number) => !taken.has(p) || taken.get(p) === room;
  if (current !== undefined && current >= range.from && current <= range.to && free(current)) return current;
  for (let p = range.from; p <= range.to; p++) if (free(p)) return p;
  return undefined;
}

/**
 * Who holds which port, from the rooms' statuses: when two rooms claim one port (a status edited by
 * hand, two operators at once), the older room keeps it.
 */
export function portHolders(
  rooms: readonly { key: string; port: number | undefined; created: string }[],
): Map<number, string> {
  const holders = new Map<number, { key: string; created: string }>();
  for (const r of rooms) {
    if (r.port === undefined) continue;
    const held = holders.get(r.port);
    if (!held || r.created < held.created || (r.created === held.created && r.key < held.key)) {
      holders.set(r.port, { key: r.key, created: r.created });
    }
  }
  return new Map([...holders].map(([port, h]) => [port, h.key]));
}
