// The cluster's certificates: which ones (pkiPlan, pure), the openssl command of each (certArgs,
// pure) and writing them (writePki). ECDSA P-256 keys from node:crypto; certificates made and signed
// by the openssl CLI (OpenSSL 3: `req -x509` with -CA and -addext), as the bash bring-up did.
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ClusterConfig } from './config.js';
import { check } from './exec.js';

export interface CaSpec {
  /** File name: <name>.crt, <name>.key. */
  name: string;
  cn: string;
}

export interface CertSpec {
  name: string;
  /** The CA that signs it (a CaSpec name). */
  ca: string;
  cn: string;
  /** Organizations: Kubernetes groups of a client certificate. */
  o?: string[];
  usage: ('serverAuth' | 'clientAuth')[];
  ips?: string[];
  dns?: string[];
}

export interface PkiPlan {
  cas: CaSpec[];
  certs: CertSpec[];
  /** The service-account signing key pair: <name>.key and <name>.pub. */
  serviceAccountKey: string;
}

/** The certificates a cluster of this configuration needs (the same set up.sh made with openssl). */
export function pkiPlan(config: ClusterConfig): PkiPlan {
  const node = config.realNode;
  const client = (name: string, cn: string, o?: string[]): CertSpec => ({
    name,
    ca: 'ca',
    cn,
    ...(o ? { o } : {}),
    usage: ['clientAuth'],
  });
  const apiserverIps = ['127.0.0.1'];
  if (config.advertiseAddress !== '127.0.0.1') apiserverIps.push(config.advertiseAddress);
  apiserverIps.push(config.serviceIp);
  const certs: CertSpec[] = [
    {
      name: 'apiserver',
      ca: 'ca',
      cn: 'kube-apiserver',
      usage: ['serverAuth'],
      ips: apiserverIps,
      dns: [
        'localhost',
        'kubernetes',
        'kubernetes.default',
        'kubernetes.default.svc',
        'kubernetes.default.svc.cluster.local',
      ],
    },
    client('admin', 'streamroom-admin', ['system:masters']),
    client('apiserver-kubelet-client', 'kube-apiserver-kubelet-client', ['system:masters']),
    client('kube-controller-manager', 'system:kube-controller-manager'),
    client('kube-scheduler', 'system:kube-scheduler'),
    { ...client('front-proxy-client', 'front-proxy-client'), ca: 'front-proxy-ca' },
  ];
  if (node) {
    // kubelet: client cert (Node authorizer identity) and serving cert (the API server and
    // metrics-server reach it at its InternalIP and verify it against our CA); kube-proxy: user bound
    // to the built-in system:node-proxier role; CoreDNS and kube-router: their RBAC in e2e/cluster/node
    certs.push(
      client('kubelet', `system:node:${node.name}`, ['system:nodes']),
      {
        name: 'kubelet-serving',
        ca: 'ca',
        cn: node.name,
        usage: ['serverAuth'],
        ips: [node.ip],
        dns: [node.name],
      },
      client('kube-proxy', 'system:kube-proxy'),
      client('coredns', 'streamroom:coredns'),
    );
    if (node.networkPolicy) certs.push(client('kube-router', 'streamroom:kube-router'));
  }
  if (config.kwok.nodes > 0) {
    // kwok's server is the "kubelet" of every simulated node (metrics-server scrapes it over TLS,
    // verified with our CA); its API client is cluster-admin (like kwokctl's setup)
    certs.push(
      {
        name: 'kwok-serving',
        ca: 'ca',
        cn: 'kwok',
        usage: ['serverAuth'],
        ips: ['127.0.0.1'],
        dns: ['localhost'],
      },
      client('kwok', 'kwok-controller', ['system:masters']),
    );
  }
  if (config.metricsServer) {
    // the aggregator checks the serving cert against <service>.<namespace>.svc
    certs.push(
      {
        name: 'metrics-server-serving',
        ca: 'ca',
        cn: 'metrics-server',
        usage: ['serverAuth'],
        ips: ['127.0.0.1'],
        dns: ['metrics-server.kube-system.svc', 'localhost'],
      },
      client('metrics-server', 'metrics-server', ['system:masters']),
    );
  }
  return {
    cas: [
      { name: 'ca', cn: 'streamroom-e2e-ca' },
      { name: 'front-proxy-ca', cn: 'streamroom-e2e-front-proxy-ca' },
    ],
    certs,
    serviceAccountKey: 'sa',
  };
}

/** The X.509v3 extensions of a certificate (CA or leaf), as openssl -addext values. */
export function certExtensions(spec: CertSpec | CaSpec): string[] {
  if (!('usage' in spec)) {
    return [
      'basicConstraints=critical,CA:TRUE',
      'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
      'subjectKeyIdentifier=hash',
    ];
  }
  const names = [...(spec.ips ?? []).map((ip) => `IP:${ip}`), ...(spec.dns ?? []).map((d) => `DNS:${d}`)];
  return [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage=${spec.usage.join(',')}`,
    'authorityKeyIdentifier=keyid',
    ...(names.length ? [`subjectAltName=${names.join(',')}`] : []),
  ];
}

/** The subject of a certificate, as openssl -subj wants it (/O=.../CN=...). */
export function subject(cn: string, o: string[] = []): string {
  const esc = (v: string) => v.replace(/[/\\]/g, (c) => `\\${c}`);
  return [...o.map((org) => `/O=${esc(org)}`), `/CN=${esc(cn)}`].join('');
}

/** The openssl arguments that write <dir>/<name>.crt for the key <dir>/<name>.key (a CA is self-signed). */
export function certArgs(dir: string, spec: CertSpec | CaSpec, days: number): string[] {
  const file = (name: string, ext: string) => path.join(dir, `${name}.${ext}`);
  const args = ['req', '-x509', '-new', '-key', file(spec.name, 'key'), '-sha256', '-days', String(days)];
  args.push('-subj', subject(spec.cn, 'o' in spec ? spec.o : undefined), '-out', file(spec.name, 'crt'));
  if ('ca' in spec) args.push('-CA', file(spec.ca, 'crt'), '-CAkey', file(spec.ca, 'key'));
  // (-addext replaces req's default v3_ca section of openssl.cnf for these extensions only)
  for (const ext of certExtensions(spec)) args.push('-addext', ext);
  return args;
}

/** A new ECDSA P-256 key pair in PEM (PKCS#8 private key, SPKI public key). */
function newKey(): { key: string; pub: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    key: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    pub: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  };
}

async function issue(dir: string, spec: CertSpec | CaSpec, days: number): Promise<void> {
  await writeFile(path.join(dir, `${spec.name}.key`), newKey().key, { mode: 0o600 });
  // (no config of the machine's: openssl.cnf could add extensions of its own)
  await check('openssl', certArgs(dir, spec, days), { env: { ...process.env, OPENSSL_CONF: '/dev/null' } });
}

/** Creates every key and certificate of the plan in dir (PEM: <name>.crt, PKCS#8 <name>.key). */
export async function writePki(dir: string, plan: PkiPlan, days = 3650): Promise<void> {
  await mkdir(dir, { recursive: true });
  await Promise.all(
    plan.cas.map((spec) =>
      issue(dir, spec, days).catch((cause: unknown) => {
        throw new Error(`creating the CA ${spec.name} (CN=${spec.cn})`, { cause });
      }),
    ),
  );
  const cas = new Set(plan.cas.map((c) => c.name));
  await Promise.all(
    plan.certs.map(async (spec) => {
      if (!cas.has(spec.ca)) throw new Error(`certificate ${spec.name}: no CA named ${spec.ca} in the plan`);
      await issue(dir, spec, days).catch((cause: unknown) => {
        throw new Error(`creating the certificate ${spec.name} (CN=${spec.cn})`, { cause });
      });
    }),
  );
  const sa = newKey();
  await writeFile(path.join(dir, `${plan.serviceAccountKey}.key`), sa.key, { mode: 0o600 });
  await writeFile(path.join(dir, `${plan.serviceAccountKey}.pub`), sa.pub);
}
