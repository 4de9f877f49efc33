// The Helm chart (charts/streamroom-operator) against a real control plane: lint, the CRD kept equal to
// crds/, rendered manifests accepted by the API server (dry run), the values schema rejecting bad values,
// and an install whose ServiceAccount is exactly enough for the operator: the operator runs in-process
// with that ServiceAccount's token (the chart's own Deployment pod is only "Running" on kwok's simulated
// nodes; no container runs) and gets rooms to Ready, while other verbs are refused.
// Also the GitOps example: `kubectl apply -k examples/gitops` and its Argo CD health check in Lua, run
// by a real Lua interpreter against the rooms read back from the cluster.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parse, parseAllDocuments } from 'yaml';
import { loadConfig, type RunningOperator } from '../../operator/src/index.js';
import { eventually, startCluster, REPO_DIR, type Cluster } from '../src/cluster.js';
import { CHART_DIR, canI, helmBinary, helmFor, serviceAccountKubeConfig } from '../src/helm.js';
import { luaBinary, runHealthCheck } from '../src/lua.js';
import { roomManifest, runOperator } from '../src/operator.js';

const RELEASE_NS = 'streamroom-system';
const TEAMS = ['team-a', 'team-b'];
const GITOPS = path.join(REPO_DIR, 'examples', 'gitops');
const HEALTH_LUA = readFileSync(path.join(GITOPS, 'argocd-health-streamroom.lua'), 'utf8');

let cluster: Cluster;
let helm: ReturnType<typeof helmFor>;
const operators: RunningOperator[] = [];

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const getJson = async (kind: string, name: string, ns: string): Promise<Obj | undefined> => {
  const r = await cluster.kubectlResult(['get', kind, name, '-n', ns, '-o', 'json']);
  return r.code === 0 ? (JSON.parse(r.stdout) as Obj) : undefined;
};

const roomYaml = (name: string, ns: string, spec: object) => JSON.stringify(roomManifest(name, ns, spec));

/** The operator in this process, authenticated as the chart's ServiceAccount. */
async function operatorAs(serviceAccount: string, namespaces: string[]): Promise<RunningOperator> {
  const kc = await serviceAccountKubeConfig(cluster, RELEASE_NS, serviceAccount);
  const op = await runOperator(cluster, {
    kubeConfig: kc,
    args: namespaces.length ? ['--namespaces', namespaces.join(',')] : [],
  });
  operators.push(op);
  return op;
}

async function stopOperator(op: RunningOperator): Promise<void> {
  operators.splice(operators.indexOf(op), 1);
  await op.stop();
}

const readyRoom = (name: string, ns: string, timeoutMs = 30_000) =>
  eventually(
    `room ${ns}/${name} Ready`,
    async () => {
      const r = await getJson('streamroom', name, ns);
      return r?.status?.phase === 'Ready' && r.status.observedGeneration === r.metadata.generation
        ? r
        : undefined;
    },
    timeoutMs,
  );

/** Every Warning Event in a namespace (a Forbidden write would show up as one). */
/** The Warning Events of a namespace, one `reason: message` a line (empty when none). */
const warnings = (ns: string) =>
  cluster.kubectl([
    'get',
    'events',
    '-n',
    ns,
    '--field-selector',
    'type=Warning',
    '-o',
    'jsonpath={range .items[*]}{.reason}: {.message}{"\\n"}{end}',
  ]);

beforeAll(async () => {
  const [c, bin] = await Promise.all([startCluster(), helmBinary()]);
  cluster = c;
  helm = helmFor(bin, cluster);
  for (const ns of [RELEASE_NS, ...TEAMS]) await cluster.kubectl(['create', 'namespace', ns]);
}, 300_000);

afterAll(async () => {
  await Promise.all(operators.map((o) => o.stop()));
  await cluster?.stop();
}, 60_000);

describe('the Helm chart', () => {
  it('passes helm lint, and its CRD is the one in crds/', async () => {
    const out = await helm.run(['lint', '--strict', CHART_DIR]);
    expect(out).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    const top = readFileSync(path.join(REPO_DIR, 'crds', 'streamrooms.streamroom.dev.yaml'), 'utf8');
    const chart = readFileSync(path.join(CHART_DIR, 'crds', 'streamrooms.streamroom.dev.yaml'), 'utf8');
    // A drift here: cp crds/streamrooms.streamroom.dev.yaml charts/streamroom-operator/crds/
    expect(chart).toBe(top);
  }, 60_000);

  it('rejects wrong values with a clear message (values.schema.json)', async () => {
    // Messages of helm >= 3.18 (santhosh-tekuri/jsonschema); older helm words them differently.
    const cases: [string[], RegExp][] = [
      [['--set', 'workers=0'], /workers.*(minimum: got 0, want 1|greater than or equal to 1)/],
      [['--set', 'workers=257'], /workers.*(maximum: got 257, want 256|less than or equal to 256)/],
      [['--set', 'logLevel=loud'], /logLevel.*must be one of/i],
      [['--set', 'watchNamespaces={Team_A}'], /watchNamespaces.*(does not match pattern|must match)/i],
      [['--set', 'image.pullPolicy=Sometimes'], /pullPolicy.*must be one of/i],
      [['--set', 'wrokers=2'], /(additional properties 'wrokers' not allowed|wrokers.*not allowed)/i],
    ];
    await Promise.all(
      cases.map(async ([args, message]) => {
        const r = await helm.result(['template', 'x', CHART_DIR, ...args]);
        expect({ args, code: r.code }).toEqual({ args, code: 1 });
        expect(r.stderr).toMatch(/values don't meet the specifications of the schema/);
        expect(r.stderr).toMatch(message);
      }),
    );
    // what the schema cannot say: two replicas without leader election
    const both = await helm.result(['template', 'x', CHART_DIR, '--set', 'leaderElection.enabled=false']);
    expect(both.stderr).toMatch(/replicaCount above 1 needs leaderElection.enabled/);
    expect(
      await helm.run(['template', 'x', CHART_DIR, '--set', 'leaderElection.enabled=false,replicaCount=1']),
    ).toMatch(/type: Recreate/);
  }, 60_000);

  it('renders manifests the API server accepts, with default and with non-default values', async () => {
    const render = (args: string[]) =>
      helm.run(['template', 'streamroom-operator', CHART_DIR, '-n', RELEASE_NS, '--include-crds', ...args]);
    const defaults = await render([]);
    const custom = await render([
      '--set',
      'turn.enabled=true,turn.service.type=NodePort,turn.service.nodePort=31478,media.network=TURN',
      '--set',
      'turn.urls={turn:203.0.113.7:31478}',
      '--set',
      `watchNamespaces={${TEAMS.join(',')}}`,
      '--set',
      'image.repository=registry.example.com/streamroom/operator,image.tag=1.2.3,image.pullPolicy=Always',
      '--set',
      'defaultRoomImage=registry.example.com/streamroom/room:1.2.3',
      '--set',
      'logLevel=debug,workers=8,nodeAddress=203.0.113.7',
      '--set',
      'resources.requests.cpu=100m,resources.requests.memory=128Mi,resources.limits.memory=512Mi',
      '--set',
      'nodeSelector.kubernetes\\.io/os=linux',
      '--set',
      'tolerations[0].key=dedicated,tolerations[0].operator=Equal,tolerations[0].value=ops,tolerations[0].effect=NoSchedule',
      '--set-string',
      'podAnnotations.prometheus\\.io/scrape=true',
      '--set',
      'grafanaDashboard.enabled=true',
    ]);
    // least privilege by default: a Role in the release namespace, no cluster-wide rule on rooms or Secrets
    const roles = parseAllDocuments(defaults)
      .map((d) => d.toJSON() as Obj | null)
      .filter((o): o is Obj => !!o && /Role$/.test(o.kind));
    expect(roles.map((o) => `${o.kind}/${o.metadata.name}@${o.metadata.namespace ?? ''}`).sort()).toEqual([
      `ClusterRole/streamroom-operator-nodes@`,
      `Role/streamroom-operator-leader-election@${RELEASE_NS}`,
      `Role/streamroom-operator@${RELEASE_NS}`,
    ]);
    expect(defaults).toMatch(new RegExp(`name: STREAMROOM_NAMESPACES\\s+value: "${RELEASE_NS}"`));
    for (const manifests of [defaults, custom]) {
      const out = await cluster.kubectl(['apply', '--dry-run=server', '-f', '-'], manifests);
      expect(out).toMatch(
        /customresourcedefinition.apiextensions.k8s.io\/streamrooms.streamroom.dev .*\(server dry run\)/,
      );
      expect(out).toMatch(/deployment.apps\/streamroom-operator .*\(server dry run\)/);
    }
    const docs = (text: string) =>
      text
        .split(/^---$/m)
        .map((d) => parse(d) as Obj)
        .filter(Boolean);
    const kinds = (text: string) =>
      docs(text)
        .map((d) => `${d.kind}/${d.metadata.namespace ?? ''}`)
        .sort();
    // namespaced by default: cluster-wide only the node list (for NodePort URLs)
    expect(kinds(defaults)).toEqual([
      'ClusterRole/',
      'ClusterRoleBinding/',
      'CustomResourceDefinition/',
      `Deployment/${RELEASE_NS}`,
      `PodDisruptionBudget/${RELEASE_NS}`,
      `Role/${RELEASE_NS}`,
      `Role/${RELEASE_NS}`,
      `RoleBinding/${RELEASE_NS}`,
      `RoleBinding/${RELEASE_NS}`,
      `Service/${RELEASE_NS}`,
      `ServiceAccount/${RELEASE_NS}`,
    ]);
    // Namespaced mode with nodeAddress set: a Role per watched namespace and nothing cluster-wide.
    // (and the TURN gateway: its Deployment, Service and Secret)
    expect(kinds(custom)).toEqual([
      `ConfigMap/${RELEASE_NS}`,
      'CustomResourceDefinition/',
      `Deployment/${RELEASE_NS}`,
      `Deployment/${RELEASE_NS}`,
      `PodDisruptionBudget/${RELEASE_NS}`,
      `Role/${RELEASE_NS}`,
      'Role/team-a',
      'Role/team-b',
      `RoleBinding/${RELEASE_NS}`,
      'RoleBinding/team-a',
      'RoleBinding/team-b',
      `Secret/${RELEASE_NS}`,
      `Service/${RELEASE_NS}`,
      `Service/${RELEASE_NS}`,
      `ServiceAccount/${RELEASE_NS}`,
    ]);
    const deployment = docs(custom).find(
      (d) => d.kind === 'Deployment' && d.metadata.name === 'streamroom-operator',
    )!;
    const pod = deployment.spec.template.spec;
    const container = pod.containers[0];
    // two replicas, one leading: replaced one at a time, the new one ready (standing by) first
    expect(deployment.spec).toMatchObject({
      replicas: 2,
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
    });
    expect(container.image).toBe('registry.example.com/streamroom/operator:1.2.3');
    expect(Object.fromEntries(container.env.map((e: Obj) => [e.name, e.value]))).toMatchObject({
      STREAMROOM_DEFAULT_IMAGE: 'registry.example.com/streamroom/room:1.2.3',
      STREAMROOM_NAMESPACES: 'team-a,team-b',
      STREAMROOM_WORKERS: '8',
      STREAMROOM_LOG_LEVEL: 'debug',
      STREAMROOM_NODE_ADDRESS: '203.0.113.7',
      STREAMROOM_HEALTH_ADDRESS: '0.0.0.0:8081',
      STREAMROOM_WAKER_LISTEN: '0.0.0.0:8082',
      STREAMROOM_MAX_WAKING: '20',
      NODE_OPTIONS: '--max-old-space-size=128 --max-semi-space-size=4',
    });
    // The env the chart sets is exactly what the operator's own config parser accepts.
    const env = Object.fromEntries(container.env.map((e: Obj) => [e.name, e.value]));
    expect(loadConfig([], { ...env, POD_NAMESPACE: RELEASE_NS })).toMatchObject({
      namespaces: TEAMS,
      workers: 8,
      logLevel: 'debug',
      kubeApiQps: 200,
      kubeApiBurst: 400,
      leaderElection: { namespace: RELEASE_NS, leaseName: 'streamroom-operator' },
      wakerListen: '0.0.0.0:8082',
      maxWaking: 20,
    });
    expect(container.env.find((e: Obj) => e.name === 'POD_NAMESPACE').valueFrom).toEqual({
      fieldRef: { fieldPath: 'metadata.namespace' },
    });
    // sleeping rooms' Services point at the leader's own pod address
    expect(container.env.find((e: Obj) => e.name === 'STREAMROOM_WAKER_ADDRESS').valueFrom).toEqual({
      fieldRef: { fieldPath: 'status.podIP' },
    });
    expect(container.resources.limits.memory).toBe('512Mi');
    expect(pod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    expect(pod.tolerations).toEqual([
      { key: 'dedicated', operator: 'Equal', value: 'ops', effect: 'NoSchedule' },
    ]);
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(container.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(container.ports).toEqual([
      { name: 'metrics', containerPort: 8081, protocol: 'TCP' },
      { name: 'waker', containerPort: 8082, protocol: 'TCP' },
    ]);
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    // the dashboard ConfigMap carries the chart's dashboard as it is
    const dashboard = docs(custom).find((d) => d.kind === 'ConfigMap')!;
    expect(dashboard.metadata.labels.grafana_dashboard).toBe('1');
    expect(JSON.parse(dashboard.data['streamroom-operator.json'])).toEqual(
      JSON.parse(readFileSync(path.join(CHART_DIR, 'dashboards', 'streamroom-operator.json'), 'utf8')),
    );
    // the ServiceMonitor (its CRD is not on this cluster) selects the metrics Service by its port name
    const monitored = docs(
      await render(['--set', 'serviceMonitor.enabled=true,serviceMonitor.labels.release=prom']),
    );
    const monitor = monitored.find((d) => d.kind === 'ServiceMonitor')!;
    const service = monitored.find((d) => d.kind === 'Service')!;
    expect(monitor.metadata.labels.release).toBe('prom');
    expect(service.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    expect(monitor.spec.endpoints).toEqual([
      { port: 'metrics', path: '/metrics', interval: '30s', scrapeTimeout: '10s' },
    ]);
    expect(service.spec.ports[0].name).toBe('metrics');
  }, 60_000);
});

describe('the chart installed: its RBAC is enough for the operator and no more', () => {
  const clusterSa = { namespace: RELEASE_NS, name: 'streamroom-operator' };
  const teamSa = { namespace: RELEASE_NS, name: 'teams-streamroom-operator' };

  it('installs cluster-wide (opted in); the operator with its ServiceAccount token gets rooms Ready', async () => {
    const notes = await helm.run([
      'install',
      'streamroom-operator',
      CHART_DIR,
      '-n',
      RELEASE_NS,
      '--set',
      'rbac.clusterWide=true',
    ]);
    // NOTES.txt: how to create a room, find its URL and its broadcaster key.
    expect(notes).toMatch(/kubectl apply .*-f -/);
    expect(notes).toMatch(/kubectl get streamrooms/);
    expect(notes).toMatch(
      /kubectl get secret my-room-keys -o jsonpath='\{\.data\.broadcasterKey\}' \| base64 -d/,
    );
    expect(notes).toMatch(/<url>#key=<key>/);
    // helm installed the CRD from the chart's crds/ (nothing else had installed it).
    await cluster.kubectl([
      'wait',
      '--for=condition=Established',
      'crd/streamrooms.streamroom.dev',
      '--timeout=30s',
    ]);
    // kwok marks the chart's operator pod Running and Ready; no container really runs on kwok's nodes.
    await cluster.kubectl([
      'rollout',
      'status',
      '-n',
      RELEASE_NS,
      'deployment/streamroom-operator',
      '--timeout=30s',
    ]);

    const op = await operatorAs(clusterSa.name, []);
    try {
      await cluster.kubectl(['create', 'namespace', 'rbac-check']);
      await cluster.kubectl(
        ['apply', '-f', '-'],
        roomYaml('np', 'rbac-check', { expose: { type: 'NodePort' }, replicas: { min: 1, max: 3 } }),
      );
      const room = await readyRoom('np', 'rbac-check');
      // A node's address in the URL: the node list was allowed.
      expect(room.status.url).toMatch(/^http:\/\/[^/]+:3\d{4}\/$/);
      // Suspend deletes the HPA; resume creates it again.
      await cluster.kubectl([
        'patch',
        'streamroom',
        'np',
        '-n',
        'rbac-check',
        '--type',
        'merge',
        '-p',
        '{"spec":{"suspend":true}}',
      ]);
      await eventually('suspended, HPA deleted', async () => {
        const r = await getJson('streamroom', 'np', 'rbac-check');
        const hpa = await cluster.kubectlResult(['get', 'hpa', 'np', '-n', 'rbac-check']);
        return r?.status?.phase === 'Suspended' && hpa.code !== 0;
      });
      const events = await cluster.kubectl([
        'get',
        'events',
        '-n',
        'rbac-check',
        '-o',
        'jsonpath={.items[*].reason}',
      ]);
      expect(events).toMatch(/Created/);
      // No Forbidden anywhere: no failed reconcile, no Warning Event, no watch restarted after an error.
      expect(await warnings('rbac-check')).toBe('');
      expect(op.controller.stats.reconcileErrors).toBe(0);
      // (No check on informer restarts: a watch on a just-created CRD may fail once with "storage is
      // (re)initializing", and the informer restarts it, as designed.)
    } finally {
      await stopOperator(op);
    }
  }, 60_000);

  it('grants the operator exactly its verbs, and nothing else', async () => {
    const yes = [
      ['list', 'streamrooms.streamroom.dev', '-A'],
      ['watch', 'streamrooms.streamroom.dev', '-A'],
      ['patch', 'streamrooms.streamroom.dev', '--subresource=status', '-n', 'rbac-check'],
      ['create', 'deployments.apps', '-n', 'rbac-check'],
      ['patch', 'horizontalpodautoscalers.autoscaling', '-n', 'rbac-check'],
      ['delete', 'ingresses.networking.k8s.io', '-n', 'rbac-check'],
      ['get', 'secrets', '-n', 'rbac-check'],
      ['create', 'events', '-n', 'rbac-check'],
      ['watch', 'endpointslices.discovery.k8s.io', '-n', 'rbac-check'],
      ['delete', 'endpointslices.discovery.k8s.io', '-n', 'rbac-check'],
      ['list', 'nodes'],
      ['create', 'leases.coordination.k8s.io', '-n', RELEASE_NS],
      ['update', 'leases.coordination.k8s.io/streamroom-operator', '-n', RELEASE_NS],
    ];
    const no = [
      ['list', 'pods', '-n', 'rbac-check'],
      ['update', 'endpointslices.discovery.k8s.io', '-n', 'rbac-check'],
      ['delete', 'namespaces'],
      ['create', 'streamrooms.streamroom.dev', '-n', 'rbac-check'],
      ['patch', 'streamrooms.streamroom.dev', '-n', 'rbac-check'],
      ['delete', 'streamrooms.streamroom.dev', '-n', 'rbac-check'],
      ['update', 'deployments.apps', '-n', 'rbac-check'],
      ['get', 'nodes'],
      ['patch', 'nodes'],
      ['create', 'clusterrolebindings.rbac.authorization.k8s.io'],
      ['get', 'configmaps', '-n', RELEASE_NS],
      ['create', 'pods', '-n', 'rbac-check'],
      ['patch', 'events', '-n', 'rbac-check'],
      ['delete', 'secrets', '-n', 'rbac-check'],
      ['update', 'leases.coordination.k8s.io/kube-controller-manager', '-n', RELEASE_NS],
      ['create', 'leases.coordination.k8s.io', '-n', 'rbac-check'],
    ];
    const answers = await Promise.all([...yes, ...no].map((a) => canI(cluster, clusterSa, a)));
    expect(answers.map((v, i) => `${v ? 'yes' : 'no'}: ${[...yes, ...no][i]!.join(' ')}`)).toEqual([
      ...yes.map((a) => `yes: ${a.join(' ')}`),
      ...no.map((a) => `no: ${a.join(' ')}`),
    ]);
  }, 60_000);

  it('in namespaced mode, works in its namespaces and may not touch any other', async () => {
    await helm.run([
      'install',
      'teams',
      CHART_DIR,
      '-n',
      RELEASE_NS,
      '--set',
      `watchNamespaces={${TEAMS.join(',')}}`,
      '--set',
      'rbac.listNodes=false,metricsService.enabled=false',
    ]);
    const op = await operatorAs(teamSa.name, TEAMS);
    try {
      await cluster.kubectl(['apply', '-f', '-'], roomYaml('room', 'team-a', {}));
      await cluster.kubectl(['apply', '-f', '-'], roomYaml('room', 'team-b', { private: true }));
      await Promise.all([readyRoom('room', 'team-a'), readyRoom('room', 'team-b')]);
      expect(await warnings('team-a')).toBe('');
      expect(op.controller.stats.reconcileErrors).toBe(0);
      // (No check on informer restarts: a watch on a just-created CRD may fail once with "storage is
      // (re)initializing", and the informer restarts it, as designed.)
    } finally {
      await stopOperator(op);
    }
    const check = (args: string[]) => canI(cluster, teamSa, args);
    expect(await check(['patch', 'deployments.apps', '-n', 'team-b'])).toBe(true);
    expect(await check(['list', 'streamrooms.streamroom.dev', '-n', 'rbac-check'])).toBe(false);
    expect(await check(['list', 'streamrooms.streamroom.dev', '-A'])).toBe(false);
    expect(await check(['get', 'secrets', '-n', 'rbac-check'])).toBe(false);
    expect(await check(['list', 'nodes'])).toBe(false);
    expect(await check(['list', 'pods', '-n', 'team-a'])).toBe(false);
  }, 60_000);
});

describe('the GitOps example and its Argo CD health check', () => {
  const lua = luaBinary();
  const health = (obj: unknown) => {
    if (!lua) throw new Error('no Lua interpreter: apt-get install -y lua5.4');
    return runHealthCheck(lua, HEALTH_LUA, obj);
  };

  it('argocd-cm.yaml carries the same script as argocd-health-streamroom.lua', () => {
    const cm = parse(readFileSync(path.join(GITOPS, 'argocd', 'argocd-cm.yaml'), 'utf8')) as Obj;
    expect(cm.data['resource.customizations.health.streamroom.dev_StreamRoom']).toBe(HEALTH_LUA);
  });

  it('kubectl apply -k makes every room Ready, and the health check says Healthy, then Suspended', async () => {
    const op = await operatorAs('streamroom-operator', []);
    try {
      await cluster.kubectl(['apply', '-k', GITOPS]);
      const names = (await cluster.kubectl(['get', 'streamrooms', '-n', 'rooms', '-o', 'name']))
        .trim()
        .split('\n');
      expect(names.length).toBeGreaterThanOrEqual(3);
      const rooms = await Promise.all(names.map((n) => readyRoom(n.split('/')[1]!, 'rooms')));
      for (const room of rooms) {
        expect({ room: room.metadata.name, ...(await health(room)) }).toEqual({
          room: room.metadata.name,
          status: 'Healthy',
          message: expect.stringContaining(room.status.url),
        });
      }
      // A new generation the operator has not observed yet: still Ready, but not for this spec.
      const lobby = rooms.find((r) => r.metadata.name === 'lobby')!;
      const stale = { ...lobby, metadata: { ...lobby.metadata, generation: lobby.metadata.generation + 1 } };
      expect(await health(stale)).toEqual({
        status: 'Progressing',
        message: expect.stringMatching(/generation/),
      });

      await cluster.kubectl([
        'patch',
        'streamroom',
        'lobby',
        '-n',
        'rooms',
        '--type',
        'merge',
        '-p',
        '{"spec":{"suspend":true}}',
      ]);
      const suspended = await eventually('lobby Suspended', async () => {
        const r = await getJson('streamroom', 'lobby', 'rooms');
        return r?.status?.phase === 'Suspended' ? r : undefined;
      });
      expect((await health(suspended)).status).toBe('Suspended');
    } finally {
      await stopOperator(op);
    }
  }, 60_000);

  it('says Degraded, Progressing or "Waiting for the operator" for rooms in those states', async () => {
    const base = {
      apiVersion: 'streamroom.dev/v1alpha1',
      kind: 'StreamRoom',
      metadata: { name: 'x', namespace: 'rooms', generation: 3 },
    };
    const cond = (type: string, status: string, reason: string, message: string) => ({
      type,
      status,
      reason,
      message,
      observedGeneration: 3,
      lastTransitionTime: '2026-01-01T00:00:00Z',
    });
    expect(await health(base)).toEqual({ status: 'Progressing', message: 'Waiting for the operator' });
    expect(
      await health({
        ...base,
        status: {
          phase: 'Degraded',
          observedGeneration: 3,
          conditions: [
            cond('Ready', 'True', 'RoomReady', '1/2 replicas ready'),
            cond('Degraded', 'True', 'ProgressDeadlineExceeded', 'The rollout is stuck: image pull failed'),
          ],
        },
      }),
    ).toEqual({ status: 'Degraded', message: 'The rollout is stuck: image pull failed' });
    expect(
      await health({
        ...base,
        status: {
          phase: 'Failed',
          observedGeneration: 3,
          conditions: [
            cond(
              'Ready',
              'False',
              'NameConflict',
              'Service x already exists and does not belong to this StreamRoom',
            ),
          ],
        },
      }),
    ).toEqual({
      status: 'Degraded',
      message: 'Service x already exists and does not belong to this StreamRoom',
    });
    expect(
      await health({
        ...base,
        status: {
          phase: 'Provisioning',
          observedGeneration: 3,
          conditions: [
            cond('Ready', 'False', 'NoReplicasReady', '0/1 replicas ready'),
            cond('Degraded', 'False', 'AsExpected', 'ok'),
          ],
        },
      }),
    ).toEqual({ status: 'Progressing', message: '0/1 replicas ready' });
    expect(await health({ ...base, status: { phase: 'Pending' } })).toEqual({
      status: 'Progressing',
      message: 'Phase Pending',
    });
  }, 30_000);

  it('says Healthy for a hibernating room (asleep because nobody came; its URL wakes it)', async () => {
    const base = {
      apiVersion: 'streamroom.dev/v1alpha1',
      kind: 'StreamRoom',
      metadata: { name: 'x', namespace: 'rooms', generation: 2 },
    };
    const msg = 'Nobody was in the room for 600 s: it sleeps (no pods); its URL wakes it.';
    const cond = (type: string, status: string) => ({
      type,
      status,
      reason: 'Hibernating',
      message: msg,
      observedGeneration: 2,
      lastTransitionTime: '2026-01-01T00:00:00Z',
    });
    const hibernating = {
      ...base,
      status: {
        phase: 'Hibernating',
        observedGeneration: 2,
        hibernatedAt: '2026-01-01T00:00:00Z',
        conditions: [cond('Ready', 'False'), cond('Degraded', 'False')],
      },
    };
    expect(await health(hibernating)).toEqual({ status: 'Healthy', message: msg });
    // a hibernating room that is also degraded is not healthy
    const degraded = {
      ...hibernating,
      status: { ...hibernating.status, conditions: [cond('Ready', 'False'), cond('Degraded', 'True')] },
    };
    expect((await health(degraded)).status).toBe('Degraded');
  }, 30_000);
});
