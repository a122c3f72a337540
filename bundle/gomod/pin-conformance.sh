#!/bin/sh
# Writes the consuming Go modules of the bundle's optional `conformance` part under
# bundle/gomod/<minor>/ (toolkit/bundle/parts.py), then `go mod tidy` records every checksum:
#   bundle/gomod/pin-conformance.sh v1.34 v1.34.4 v0.29.2
# conformance/: e2e.test (`go test -c k8s.io/kubernetes/test/e2e`), go-runner, agnhost,
#   nonewprivs' nnp and ginkgo at the version k8s.io/kubernetes pins, with the staging
#   modules pinned as in gomod/<minor>/kubernetes. `go test -c` of a dependency's package
#   needs its test imports in go.sum: deps.go names them (build tag `tools`, never
#   compiled), so tidy keeps them.
# sample-apiserver/: the wardle API server the Aggregator spec runs; the tag e2e.test asks
#   for (test/utils/image/manifest.go) is what upstream built it from.
set -eu
[ $# -eq 3 ] || { echo "usage: $0 MINOR KUBERNETES SAMPLE_APISERVER" >&2; exit 2; }
minor=$1 k8s=$2 sample=$3
here=$(cd "$(dirname "$0")" && pwd)
go=${K8SLAB_GO:-go}
src=$("$go" mod download -json "k8s.io/kubernetes@$k8s" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
ginkgo=$(sed -n 's/^\tgithub.com\/onsi\/ginkgo\/v2 \(v[^ ]*\)$/\1/p' "$src/go.mod")

# The go, godebug and replace lines are the kubernetes module's (pin.sh wrote them): the
# same staging pins as the base bundle's binaries.
kubernetes=$here/$minor/kubernetes/go.mod
[ -f "$kubernetes" ] || { echo "$kubernetes is missing: run pin.sh for $minor first" >&2; exit 1; }
dir=$here/$minor/conformance
rm -rf "$dir"; mkdir -p "$dir"; cd "$dir"
{
    echo "module k8slab.local/bundle/conformance"
    echo
    grep -E '^(go|godebug) ' "$kubernetes"
    echo
    echo "require ("
    echo "	k8s.io/kubernetes $k8s"
    echo "	github.com/onsi/ginkgo/v2 $ginkgo"
    echo ")"
    echo
    sed -n '/^replace (/,/^)/p' "$kubernetes"
    echo
    echo "tool ("
    echo "	github.com/onsi/ginkgo/v2/ginkgo"
    echo "	k8s.io/kubernetes/test/conformance/image/go-runner"
    echo "	k8s.io/kubernetes/test/images/agnhost"
    echo "	k8s.io/kubernetes/test/images/nonewprivs"
    echo ")"
} > go.mod
{
    echo "//go:build tools"
    echo
    echo "// Package deps names what \`go test -c k8s.io/kubernetes/test/e2e\` compiles: the"
    echo "// imports of that package's e2e_test.go. Never built; go mod tidy reads it."
    echo "package deps"
    echo
    echo "import ("
    echo "	_ \"k8s.io/kubernetes/test/e2e\""
    sed -n '/^import (/,/^)/p' "$src/test/e2e/e2e_test.go" | grep -o '"[^"]*"' | grep '\.' \
        | sort -u | sed 's/^/\t_ /'
    echo ")"
} > deps.go
"$go" mod tidy

dir=$here/$minor/sample-apiserver
rm -rf "$dir"; mkdir -p "$dir"; cd "$dir"
"$go" mod init k8slab.local/bundle/sample-apiserver 2>/dev/null
"$go" get -tool "k8s.io/sample-apiserver@$sample"
# Run with the behaviour of the Go it was released for (as kubernetes' go.mod does with
# `godebug default=go1.24`), not with a newer toolchain's defaults.
sample_src=$("$go" mod download -json "k8s.io/sample-apiserver@$sample" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
"$go" mod edit -godebug="default=go$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$sample_src/go.mod")"
"$go" mod tidy
