#!/bin/sh
# Writes the consuming Go module of an optional part of the bundle (the pin_command of its
# Part, toolkit/bundle/cri_dockerd.py) under bundle/gomod/<minor>/<folder>/, carrying the
# component's own `replace` block, then `go mod tidy` records every checksum in go.sum:
#   bundle/gomod/pin-part.sh v1.34 cri-dockerd github.com/Mirantis/cri-dockerd@v0.4.0
# A component whose go.mod replaces modules (cri-dockerd pins its k8s.io modules to
# v0.29.10 there and requires them as v0.0.0) cannot be built from a consumer without those
# replaces: the proxy refuses k8s.io/kubelet@v0.0.0 and k8s.io/cri-api/v1alpha2. Replaces to
# a local folder cannot be carried; the script stops on one.
set -eu
[ $# -ge 3 ] || { echo "usage: $0 MINOR FOLDER MODULE@VERSION [TOOL_PACKAGE...]" >&2; exit 2; }
minor=$1 folder=$2 target=$3; shift 3
here=$(cd "$(dirname "$0")" && pwd)
go=${K8SLAB_GO:-go}
module=${target%@*} version=${target#*@}
[ $# -gt 0 ] || set -- "$module"

src=$("$go" mod download -json "$target" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -n "$src" ] || { echo "$target: not downloaded" >&2; exit 1; }
replaces=$(sed -n '/^replace (/,/^)/p' "$src/go.mod" | sed '1d;$d'; sed -n 's/^replace \([^(].*\)/\t\1/p' "$src/go.mod")
if echo "$replaces" | grep -q '=> *\.'; then
    echo "$target replaces a module with a local folder; that cannot be carried" >&2
    exit 1
fi

dir=$here/$minor/$folder
rm -rf "$dir"; mkdir -p "$dir"; cd "$dir"
{
    echo "module k8slab.local/bundle/$folder"
    echo
    echo "go $("$go" env GOVERSION | sed 's/^go//')"
    echo
    echo "require $module $version"
    echo
    if [ -n "$replaces" ]; then
        echo "// Carried from $target's own go.mod."
        echo "replace ("
        echo "$replaces" | sed 's/^[[:space:]]*/\t/'
        echo ")"
        echo
    fi
    echo "tool ("
    for tool in "$@"; do echo "	$tool"; done
    echo ")"
} > go.mod
[ ! -f "$src/go.sum" ] || { cat "$src/go.sum" > go.sum; }
"$go" mod tidy
