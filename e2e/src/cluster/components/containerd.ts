// containerd for the real node (not docker's): own root, state and socket; the CRI with cgroupfs,
// our pause image, a stream server on 127.0.0.1, and the bridge CNI of the node.
import path from 'node:path';
import type { ClusterContext, RealNodeConfig } from '../config.js';

export const name = 'containerd';

export const socket = (node: RealNodeConfig) => path.join(node.containerdState, 'containerd.sock');
export const configFile = ({ paths }: ClusterContext) => path.join(paths.node, 'containerd.toml');
export const cniConfDir = ({ paths }: ClusterContext) => path.join(paths.node, 'cni', 'net.d');

export function flags(ctx: ClusterContext): string[] {
  return ['--config', configFile(ctx)];
}

function nodeOf(ctx: ClusterContext): RealNodeConfig {
  if (!ctx.config.realNode) throw new Error('containerd runs only with a real node');
  return ctx.config.realNode;
}

/**
 * Without CAP_SYS_RESOURCE (e.g. a Firecracker VM's root) no process may lower its oom_score_adj,
 * and runc fails to start the pod sandbox (-998) with "can't get final child's PID from pipe";
 * restrict_oom_score_adj makes containerd clamp scores to its own.
 */
export function configToml(ctx: ClusterContext): string {
  const node = nodeOf(ctx);
  return `# containerd for the streamroom real node (not docker's): own root, state and socket.
version = 2
root = "${node.containerdRoot}"
state = "${node.containerdState}"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "${socket(node)}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "streamroom/pause:3.10"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  restrict_oom_score_adj = ${!ctx.canLowerOomScore}
  # pod network namespaces under our state dir, not /var/run/netns
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        # runc's state apart from any other containerd on the machine
        Root = "${node.containerdState}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${ctx.cniBinDir}"
    conf_dir = "${cniConfDir(ctx)}"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ""
`;
}

/**
 * The pod network: bridge + host-local on the node's podCIDR, masquerade out of the pod network,
 * hostPort (portmap) and FORWARD accept rules for pod traffic (firewall; docker sets FORWARD to
 * DROP). containerd adds the loopback interface itself (loopback plugin from bin_dir).
 */
export function cniConflist(ctx: ClusterContext): object {
  const node = nodeOf(ctx);
  return {
    cniVersion: '1.0.0',
    name: 'streamroom',
    plugins: [
      {
        type: 'bridge',
        bridge: node.bridge,
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          dataDir: path.join(ctx.paths.node, 'cni', 'ipam'),
          ranges: [[{ subnet: node.podCidr }]],
          routes: [{ dst: '0.0.0.0/0' }],
        },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
      { type: 'firewall', backend: 'iptables' },
    ],
  };
}
