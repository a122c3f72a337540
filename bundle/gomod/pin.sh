#!/bin/sh
# Writes the consuming Go modules of one Kubernetes minor under bundle/gomod/<minor>/,
# then `go mod tidy` records every checksum in go.sum. Run it when adding a version to
# toolkit/versions.py, with that release's pins:
#   bundle/gomod/pin.sh v1.35 v1.35.4 3.6.6 v1.34.0 v1.8.0 v1.13.1 v0.27.4
set -eu
[ $# -eq 7 ] || { echo "usage: $0 MINOR KUBERNETES ETCD CRICTL CNI_PLUGINS COREDNS FLANNEL" >&2; exit 2; }
minor=$1 k8s=$2 etcd=$3 crictl=$4 cni=$5 coredns=$6 flannel=$7
here=$(cd "$(dirname "$0")" && pwd)
go=${K8SLAB_GO:-go}
staging=$(echo "$k8s" | sed 's/^v1\./v0./')

module() { # folder, then the tool packages at their versions
    dir=$here/$minor/$1; shift
    rm -rf "$dir"; mkdir -p "$dir"; cd "$dir"
    "$go" mod init "k8slab.local/bundle/$(basename "$dir")" 2>/dev/null
    for tool in "$@"; do "$go" get -tool "$tool"; done
}

# k8s.io/kubernetes requires its staging modules as v0.0.0 and replaces them with its own
# staging/ folders; a consumer must pin them to their published tags instead.
dir=$here/$minor/kubernetes
rm -rf "$dir"; mkdir -p "$dir"; cd "$dir"
src=$("$go" mod download -json "k8s.io/kubernetes@$k8s" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
{
    echo "module k8slab.local/bundle/kubernetes"
    echo
    grep -E '^(go|godebug) ' "$src/go.mod"
    echo
    echo "require k8s.io/kubernetes $k8s"
    echo
    echo "replace ("
    grep '=> ./staging' "$src/go.mod" | awk -v v="$staging" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
    echo
    echo "tool ("
    for c in kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
        echo "	k8s.io/kubernetes/cmd/$c"
    done
    echo ")"
} > go.mod

module etcd "go.etcd.io/etcd/server/v3@v$etcd" "go.etcd.io/etcd/etcdctl/v3@v$etcd" \
    "go.etcd.io/etcd/etcdutl/v3@v$etcd"
module crictl "sigs.k8s.io/cri-tools/cmd/crictl@$crictl"
module cni-plugins $(for p in main/bridge ipam/host-local main/loopback meta/portmap; do
    echo "github.com/containernetworking/plugins/plugins/$p@$cni"; done)
module coredns "github.com/coredns/coredns@$coredns"
module flannel "github.com/flannel-io/flannel@$flannel"

for dir in "$here/$minor"/*/; do (cd "$dir" && "$go" mod tidy); done
