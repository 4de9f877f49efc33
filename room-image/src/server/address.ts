/**
 * The client address the per-address limits count a connection under. It is the peer's own address,
 * unless the peer is a trusted proxy (ROOM_TRUSTED_PROXIES): then X-Forwarded-For is read from the
 * right, past every trusted hop, and the first address that is not a trusted proxy is the client's.
 * Whatever a client writes itself into the header sits to the left of that and is never believed.
 * IPv6 clients are counted per /64, the block one subscriber usually gets.
 */
import { BlockList, isIP } from 'node:net';

/** (peer address, X-Forwarded-For header) → the key a client's connections count under. */
export type ClientKey = (remote: string | undefined, forwardedFor: string | string[] | undefined) => string;

/** An address as sockets and proxies write it (IPv4-mapped IPv6, brackets, a port) made bare. */
export function bareIp(raw: string): string | undefined {
  let ip = raw.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(ip);
  if (bracketed) ip = bracketed[1]!;
  else if (/^\d{1,3}(\.\d{1,3}){3}:\d+$/.test(ip)) ip = ip.slice(0, ip.lastIndexOf(':'));
  const mapped = /^::ffff:(\d{1,3}(\.\d{1,3}){3})$/i.exec(ip);
  if (mapped) ip = mapped[1]!;
  return isIP(ip) === 0 ? undefined : ip;
}

/** The eight 16-bit groups of an IPv6 address (`::` expanded, an IPv4 tail converted). */
function ipv6Groups(ip: string): number[] {
  let text = ip.split('%')[0]!; // no zone
  const v4 = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  return [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/** The key of an address: itself (IPv4), or its /64 (IPv6). */
export function addressKey(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  const g = ipv6Groups(ip);
  return `${g
    .slice(0, 4)
    .map((n) => n.toString(16))
    .join(':')}::/64`;
}

/** Builds the ClientKey of a room from its trusted proxies (IPs and CIDR blocks, validated by config). */
export function clientKey(trustedProxies: readonly string[]): ClientKey {
  const trusted = new BlockList();
  for (const entry of trustedProxies) {
    const [ip, prefix] = entry.split('/') as [string, string | undefined];
    const family = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) trusted.addAddress(ip, family);
    else trusted.addSubnet(ip, Number(prefix), family);
  }
  const isTrusted = (ip: string): boolean => trusted.check(ip, isIP(ip) === 6 ? 'ipv6' : 'ipv4');

  return (remote, forwardedFor) => {
    let ip = bareIp(remote ?? '');
    if (ip === undefined) return 'unknown'; // the connection is already gone
    if (trustedProxies.length > 0 && forwardedFor !== undefined) {
      const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',');
      while (isTrusted(ip) && hops.length > 0) {
        const next = bareIp(hops.pop()!);
        if (next === undefined) break; // garbage: the last trusted hop is all we know
        ip = next;
      }
    }
    return addressKey(ip);
  };
}
