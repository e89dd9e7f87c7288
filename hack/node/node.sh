# shellcheck shell=bash
# A real node for hack/localcluster (`start DIR --with-node`), sourced by it:
# Debian's containerd, runc and CNI plugins, and kubelet, kube-scheduler and
# kube-proxy built from the control plane's k8s.io/kubernetes module.
#
# Everything lives under DIR/node: containerd's root, state and socket, the CNI
# configuration and IPAM state, kubelet's root, the logs and pid files. What is
# the machine's is recorded and given back by `stop`: the bridge, kube-proxy's
# iptables rules, the mounts under DIR/node, the network namespaces the Pods got,
# and the sysctls kubelet and the bridge plugin change.
#
# Why these settings (this machine: cgroup v1 beside an empty cgroup2, "hybrid"):
# - kubelet 1.35+ refuses cgroup v1 unless failCgroupV1: false; the QoS cgroup
#   hierarchy and node allocatable enforcement are off (cgroupfs, nothing to
#   enforce on a test node).
# - containerd's restrict_oom_score_adj: root here may not lower oom_score_adj
#   below its own, and every sandbox asks for -998 otherwise.
# - The sandbox ("pause") image is built here (no registry): hack/node/pause.c.
# - The node's address is on a bridge of its own (kubelet refuses a loopback
#   node IP); Pods get addresses on that bridge and reach the API server and any
#   test server on the node's address. No masquerading: nothing leaves the machine.

NODE_BRIDGE=cuwbr0
NODE_SUBNET=10.217.0.0/24
NODE_IP=10.217.0.1
NODE_NAME=cuw-node
SERVICE_CIDR=10.0.0.0/24
KUBERNETES_SERVICE_IP=10.0.0.1
PAUSE_IMAGE=localhost/cce-upgrade-watch/pause:1
# Paths outside DIR that kubelet, containerd's shims and CNI use whatever they are
# told (device-plugin socket, CNI result cache, shim sockets, runc state, pod log
# links): removed by stop when the node created them, else only our entries.
NODE_MACHINE_PATHS=(/var/lib/kubelet /var/lib/cni /var/log/pods /var/log/containers /run/containerd)
# The sysctls kubelet (setupKernelTunables) and the bridge plugin (isGateway) set.
NODE_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward)

with_node() { [[ -f $DIR/with-node ]]; }

node_ctr() { ctr --address "$DIR/node/containerd.sock" --namespace k8s.io "$@"; }

node_check_host() {
  [[ $(id -u) == 0 ]] || die "a node needs root (containerd, CNI, iptables)"
  node_binaries_present || die "the node's binaries are not built; run '$0 build-node' first"
  local tool
  for tool in containerd ctr runc ip iptables dnsmasq; do
    command -v "$tool" >/dev/null || die "$tool is missing; run hack/host-packages node"
  done
  [[ -x /usr/lib/cni/bridge ]] || die "CNI plugins missing; run hack/host-packages node"
  if ip link show "$NODE_BRIDGE" >/dev/null 2>&1 && [[ ! -f $DIR/node/bridge.created ]]; then
    die "the bridge $NODE_BRIDGE exists already: is another node running? stop it first"
  fi
}

node_free_port() { free_port; }

node_bridge() {
  mkdir -p "$DIR/node"
  if ! ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    ip link add "$NODE_BRIDGE" type bridge
    touch "$DIR/node/bridge.created"
  fi
  ip addr replace "$NODE_IP/24" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  # Service IPs are virtual: kube-proxy rewrites them to a Pod or the node. One it
  # has not rewritten yet (a scrape from the node before its rules exist) must stay
  # on the bridge, where nothing answers, instead of following the default route.
  ip route replace "$SERVICE_CIDR" dev "$NODE_BRIDGE"
  node_egress_block
}

# Nothing a Pod sends may leave this machine: the bridge plugin turns on IP
# forwarding, so a packet to an address no rule rewrites (a Service IP before
# kube-proxy has written its rules, say) would otherwise be routed out. Pods
# still reach the node itself (INPUT: the API server, DNS, the simulator) and
# each other (out through the same bridge).
NODE_EGRESS_RULE=(FORWARD -i "$NODE_BRIDGE" ! -o "$NODE_BRIDGE" -m comment --comment cuw-node-no-egress -j DROP)
node_egress_block() {
  iptables -C "${NODE_EGRESS_RULE[@]}" 2>/dev/null || iptables -I "${NODE_EGRESS_RULE[@]}"
}
node_egress_unblock() {
  while iptables -D "${NODE_EGRESS_RULE[@]}" 2>/dev/null; do :; done
}

node_save_sysctls() {
  mkdir -p "$DIR/node"
  [[ -f $DIR/node/sysctls.saved ]] && return 0
  local key
  for key in "${NODE_SYSCTLS[@]}"; do
    printf '%s=%s\n' "$key" "$(sysctl -n "$key" 2>/dev/null)"
  done > "$DIR/node/sysctls.saved"
  # Network namespaces that exist before the node: everything else in /run/netns
  # named cni-* afterwards is a Pod's, to be removed by stop.
  ls /run/netns 2>/dev/null | grep '^cni-' > "$DIR/node/netns.before" || true
  # Likewise the iptables chains: kubelet adds KUBE-FIREWALL, KUBE-KUBELET-CANARY and
  # KUBE-IPTABLES-HINT (kube-proxy --cleanup does not remove them).
  node_iptables_chains > "$DIR/node/chains.before"
  local path
  for path in "${NODE_MACHINE_PATHS[@]}"; do
    [[ -e $path ]] && echo "$path"
  done > "$DIR/node/paths.before"
  ls /var/lib/cni/results 2>/dev/null > "$DIR/node/cni-results.before" || true
}

node_machine_paths_cleanup() {
  local path entry
  for path in "${NODE_MACHINE_PATHS[@]}"; do
    grep -qx "$path" "$DIR/node/paths.before" 2>/dev/null || rm -rf "$path"
  done
  for entry in $(ls /var/lib/cni/results 2>/dev/null); do
    grep -qx "$entry" "$DIR/node/cni-results.before" 2>/dev/null || rm -f "/var/lib/cni/results/$entry"
  done
}

node_iptables_chains() { # "TOOL TABLE CHAIN" for every KUBE-* chain
  local tool table
  for tool in iptables ip6tables; do
    command -v "$tool" >/dev/null || continue
    for table in filter nat mangle; do
      "$tool" -t "$table" -S 2>/dev/null | awk -v t="$tool $table" '$1 == "-N" && $2 ~ /^KUBE-/ {print t, $2}'
    done
  done
}

node_iptables_cleanup() {
  local tool table chain
  while read -r tool table chain; do
    grep -qx "$tool $table $chain" "$DIR/node/chains.before" 2>/dev/null && continue
    # Jumps into the chain from the built-in chains first, then the chain itself.
    "$tool" -t "$table" -S 2>/dev/null | awk -v c="$chain" '$1 == "-A" && $0 ~ ("-j " c "( |$)") {print}' |
      while read -r _ builtin rule; do
        # shellcheck disable=SC2086 # the rule's words, as iptables -S printed them
        "$tool" -t "$table" -D "$builtin" $rule 2>/dev/null || true
      done
    "$tool" -t "$table" -F "$chain" 2>/dev/null || true
    "$tool" -t "$table" -X "$chain" 2>/dev/null || true
  done < <(node_iptables_chains)
}

node_write_configs() {
  local d=$DIR/node
  mkdir -p "$d/cni" "$d/logs" "$d/kubelet" "$d/containerd"
  cat > "$d/containerd.toml" <<EOF
version = 2
root = "$d/containerd/root"
state = "$d/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.ttrpc.sock"
[debug]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$d/cni"
EOF
  cat > "$d/cni/10-cuw.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "cuw",
  "plugins": [
    {
      "type": "bridge", "bridge": "$NODE_BRIDGE", "isGateway": true, "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$d/cni-ipam",
        "ranges": [[{"subnet": "$NODE_SUBNET", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
EOF
  # The cluster's DNS (what CoreDNS is elsewhere): names the test gives in
  # DIR/node/hosts, nothing forwarded outside.
  touch "$d/hosts"
  printf 'nameserver %s\nsearch cluster.local\n' "$NODE_IP" > "$d/resolv.conf"
  local kubelet_port kubelet_healthz proxy_healthz proxy_metrics
  kubelet_port=$(node_free_port)
  kubelet_healthz=$(node_free_port)
  proxy_healthz=$(node_free_port)
  proxy_metrics=$(node_free_port)
  echo "$kubelet_healthz" > "$d/kubelet-healthz.port"
  cat > "$d/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
containerRuntimeEndpoint: unix://$d/containerd.sock
clusterDNS: [$NODE_IP]
clusterDomain: cluster.local
resolvConf: $d/resolv.conf
podLogsDir: $d/pod-logs
evictionHard: {memory.available: "100Mi"}
imageGCHighThresholdPercent: 100
serializeImagePulls: false
EOF
  cat > "$d/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $DIR/kubeconfig}
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
clusterCIDR: $NODE_SUBNET
healthzBindAddress: 127.0.0.1:$proxy_healthz
metricsBindAddress: 127.0.0.1:$proxy_metrics
iptables: {localhostNodePorts: false}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

node_start_process() { # node_start_process NAME COMMAND...: background, pid in DIR/node
  local name=$1
  shift
  pid_alive "$DIR/node/$name.pid" && return 0
  "$@" >"$DIR/node/logs/$name.log" 2>&1 &
  echo $! > "$DIR/node/$name.pid"
}

node_pause_image() {
  node_ctr images ls -q 2>/dev/null | grep -qx "$PAUSE_IMAGE" && return 0
  local archive=$NODE_BIN_DIR/pause.oci.tar
  if [[ ! -f $archive ]]; then
    local context=$DIR/node/pause-build
    mkdir -p "$context"
    cp "$NODE_BIN_DIR/pause" "$context/pause"
    printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' \
      > "$context/Containerfile"
    "$HACK_DIR/image" podman build --quiet --pull=never -t "$PAUSE_IMAGE" "$context" >/dev/null
    "$HACK_DIR/image" podman save --quiet --format oci-archive -o "$archive.tmp" "$PAUSE_IMAGE"
    mv "$archive.tmp" "$archive"
  fi
  node_ctr images import --base-name "${PAUSE_IMAGE%:*}" "$archive" >/dev/null
}

node_start() {
  START_SECONDS=${START_SECONDS:-$SECONDS}
  node_check_host
  node_save_sysctls
  node_bridge
  node_write_configs
  local d=$DIR/node
  node_start_process containerd containerd --config "$d/containerd.toml"
  wait_for 30 "$d/containerd.pid" containerd node_ctr version \
    || { tail_log "$d/logs/containerd.log"; die "containerd did not start"; }
  node_pause_image
  node_start_process dnsmasq dnsmasq --keep-in-foreground --no-daemon --no-resolv --no-hosts \
    --bind-interfaces --listen-address "$NODE_IP" --except-interface lo \
    --addn-hosts "$d/hosts" --pid-file="$d/dnsmasq.own.pid" --log-facility=-
  node_start_process kubelet "$NODE_BIN_DIR/kubelet" --config "$d/kubelet.yaml" \
    --kubeconfig "$DIR/kubeconfig" --root-dir "$d/kubelet" --cert-dir "$d/kubelet/pki" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_IP"
  node_start_process kube-scheduler "$NODE_BIN_DIR/kube-scheduler" \
    --kubeconfig "$DIR/kubeconfig" --authentication-kubeconfig "$DIR/kubeconfig" \
    --authorization-kubeconfig "$DIR/kubeconfig" --bind-address 127.0.0.1 \
    --secure-port "$(node_free_port)" --leader-elect=false
  node_start_process kube-proxy "$NODE_BIN_DIR/kube-proxy" --config "$d/kube-proxy.yaml"
  if ! wait_for 120 "$d/kubelet.pid" "node $NODE_NAME" node_ready; then
    tail_log "$d/logs/kubelet.log" 40
    die "the node did not become Ready; logs in $d/logs"
  fi
}

node_ready() {
  "$BIN_DIR/kubectl" --kubeconfig "$DIR/kubeconfig" get node "$NODE_NAME" \
    -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True
}

node_stop() {
  [[ -d $DIR/node ]] || return 0
  local d=$DIR/node
  # The Pods first, through kubelet while it runs: CNI tears their networks down.
  if pid_alive "$d/kubelet.pid" && pid_alive "$DIR/apiserver.pid"; then
    "$BIN_DIR/kubectl" --kubeconfig "$DIR/kubeconfig" delete pods --all --all-namespaces \
      --grace-period=0 --force --wait=false >/dev/null 2>&1 || true
    local deadline=$((SECONDS + 60))
    while ((SECONDS < deadline)) && [[ -n $(node_ctr containers ls -q 2>/dev/null) ]]; do
      sleep 0.5
    done
  fi
  stop_pid "$d/kubelet.pid" kubelet
  stop_pid "$d/kube-scheduler.pid" kube-scheduler
  stop_pid "$d/kube-proxy.pid" kube-proxy
  # Whatever kubelet left: kill the tasks (their shims exit), remove the containers.
  if pid_alive "$d/containerd.pid"; then
    local id
    for id in $(node_ctr tasks ls -q 2>/dev/null); do
      node_ctr tasks kill --signal SIGKILL "$id" >/dev/null 2>&1 || true
    done
    for id in $(node_ctr tasks ls -q 2>/dev/null); do
      node_ctr tasks delete --force "$id" >/dev/null 2>&1 || true
    done
    for id in $(node_ctr containers ls -q 2>/dev/null); do
      node_ctr containers delete "$id" >/dev/null 2>&1 || true
    done
  fi
  stop_pid "$d/containerd.pid" containerd
  stop_pid "$d/dnsmasq.pid" dnsmasq
  # kube-proxy's iptables rules.
  if [[ -x $NODE_BIN_DIR/kube-proxy ]]; then
    "$NODE_BIN_DIR/kube-proxy" --cleanup >/dev/null 2>&1 || true
  fi
  node_iptables_cleanup
  node_egress_unblock
  ip route delete "$SERVICE_CIDR" dev "$NODE_BRIDGE" 2>/dev/null || true
  # The Pods' network namespaces, if any were left.
  local ns
  for ns in $(ls /run/netns 2>/dev/null | grep '^cni-' || true); do
    grep -qx "$ns" "$d/netns.before" 2>/dev/null && continue
    umount "/run/netns/$ns" 2>/dev/null || true
    rm -f "/run/netns/$ns"
  done
  # Mounts under DIR/node (volumes, snapshots, shm), deepest first.
  local mount
  for mount in $(awk -v prefix="$d/" 'index($2, prefix) == 1 {print $2}' /proc/self/mounts | sort -r); do
    umount -l "$mount" 2>/dev/null || true
  done
  [[ -f $d/paths.before ]] && node_machine_paths_cleanup
  if [[ -f $d/bridge.created ]]; then
    ip link delete "$NODE_BRIDGE" 2>/dev/null || true
    rm -f "$d/bridge.created"
  fi
  if [[ -f $d/sysctls.saved ]]; then
    local line
    while IFS= read -r line; do
      [[ $line == *=?* ]] && sysctl -q -w "$line" >/dev/null 2>&1 || true
    done < "$d/sysctls.saved"
    rm -f "$d/sysctls.saved"
  fi
  log "node stopped and cleaned up"
}
