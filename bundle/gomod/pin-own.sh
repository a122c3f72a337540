#!/bin/sh
# Writes the consuming Go module of one of k8slab's own programs under bundle/src/ for one
# Kubernetes minor (the pin_command of its Part, toolkit/bundle/cloud_provider.py), then
# `go mod tidy` records every checksum in go.sum:
#   bundle/gomod/pin-own.sh v1.34 cloud-provider-k8slab k8s.io/cloud-provider
# The source is one for every minor; what it is built against is the minor's: the go,
# godebug and staging-module replace lines of gomod/<minor>/kubernetes (pin.sh wrote them),
# and each staging MODULE named required at that release's v0.x. Requiring them before
# tidy makes their own go.mod pin the rest (klog, yaml...) as upstream's release does;
# otherwise tidy would take the newest of each.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 MINOR FOLDER [STAGING_MODULE...]" >&2; exit 2; }
minor=$1 folder=$2; shift 2
here=$(cd "$(dirname "$0")" && pwd)
go=${K8SLAB_GO:-go}
module=k8slab.local/$folder
[ -f "$here/../src/$folder/go.mod" ] || { echo "bundle/src/$folder/go.mod is missing" >&2; exit 1; }
kubernetes=$here/$minor/kubernetes/go.mod
[ -f "$kubernetes" ] || { echo "$kubernetes is missing: run pin.sh for $minor first" >&2; exit 1; }

dir=$here/$minor/$folder
rm -rf "$dir"; mkdir -p "$dir"; cd "$dir"
{
    echo "module k8slab.local/bundle/$folder"
    echo
    grep -E '^(go|godebug) ' "$kubernetes"
    echo
    echo "require ("
    echo "	$module v0.0.0"
    for staging in "$@"; do
        pinned=$(sed -n "s|^\t$staging => $staging \(v[^ ]*\)\$|\1|p" "$kubernetes")
        [ -n "$pinned" ] || { echo "$kubernetes does not pin $staging" >&2; exit 1; }
        echo "	$staging $pinned"
    done
    echo ")"
    echo
    echo "replace $module => ../../../src/$folder"
    echo
    sed -n '/^replace (/,/^)/p' "$kubernetes"
    echo
    echo "tool $module"
} > go.mod
"$go" mod tidy
