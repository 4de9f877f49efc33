// What a tenant may ask for, as the cluster admin configured it (--allowed-images,
// --allowed-ingress-hosts; the chart's ValidatingAdmissionPolicy checks the same rules at `kubectl
// apply`, and the operator checks them again for rooms that got in before a policy existed).

export interface RoomPolicy {
  /** Image prefixes (a registry path, or `name@sha256:` for digests); empty: any image. */
  images: string[];
  /** Ingress host suffixes per namespace (`*`: every namespace without its own entry); empty: any host. */
  hosts: Map<string, string[]>;
}

/** "team-a=a.example.com,shop.example.com;*=rooms.example.com" */
export function parseHosts(text: string): Map<string, string[]> {
  const hosts = new Map<string, string[]>();
  for (const entry of text
    .split(';')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const eq = entry.indexOf('=');
    const ns = entry.slice(0, eq).trim();
    const suffixes = entry
      .slice(eq + 1)
      .split(',')
      .map((s) => s.trim().toLowerCase().replace(/^\*\./, ''))
      .filter(Boolean);
    if (eq < 1 || !(ns === '*' || /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ns)) || suffixes.length === 0) {
      throw new Error(`--allowed-ingress-hosts: "${entry}" is not <namespace>=<host suffix>[,<suffix>...]`);
    }
    for (const s of suffixes) {
      if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(s))
        throw new Error(`--allowed-ingress-hosts: "${s}" is not a DNS name`);
    }
    hosts.set(ns, suffixes);
  }
  return hosts;
}

export function parseImages(text: string): string[] {
  return text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
}

/** Why the image is refused, or undefined; the operator's own default image is always allowed. */
export function imageRefusal(policy: RoomPolicy, image: string, defaultImage: string): string | undefined {
  if (
    policy.images.length === 0 ||
    image === defaultImage ||
    policy.images.some((p) => image.startsWith(p))
  ) {
    return undefined;
  }
  return `spec.image ${image} is not allowed here: images must start with one of ${policy.images.join(', ')}`;
}

/**
 * Why the Ingress host is refused, or undefined. A host is allowed when it is one of its namespace's
 * suffixes or below one; a wildcard host (`*.x`) claims everything below x, so x itself must be allowed.
 */
export function hostRefusal(policy: RoomPolicy, namespace: string, host: string): string | undefined {
  if (policy.hosts.size === 0) return undefined;
  const suffixes = policy.hosts.get(namespace) ?? policy.hosts.get('*') ?? [];
  const name = host.toLowerCase().replace(/^\*\./, '');
  if (suffixes.some((s) => name === s || name.endsWith(`.${s}`))) return undefined;
  return suffixes.length
    ? `expose.host ${host} is not allowed in namespace ${namespace}: hosts must be ${suffixes.join(' or ')} or below`
    : `expose.host ${host} is not allowed: namespace ${namespace} may not use Ingress hosts`;
}
