#!/bin/sh
# Wait until the kubelet has stopped these static Pods (their manifests are parked). They
# get GRACE seconds to stop by themselves (an API server drains its watches for about
# 30 s); their state is about to be replaced, so what still runs then is stopped with
# crictl, and the whole wait ends after DEADLINE seconds.
# Usage: wait-stopped.sh RUNTIME_ENDPOINT GRACE DEADLINE POD...
set -u
endpoint=$1 grace=$2 deadline=$3
shift 3
running() {
  for pod in "$@"; do
    crictl --runtime-endpoint "$endpoint" ps -q --state running --name "^$pod\$"
  done
}
waited=0
while [ "$waited" -lt "$deadline" ]; do
  ids=$(running "$@")
  [ -z "$ids" ] && exit 0
  if [ "$waited" -ge "$grace" ]; then
    for id in $ids; do crictl --runtime-endpoint "$endpoint" stop --timeout 2 "$id" >/dev/null || true; done
  fi
  sleep 2
  waited=$((waited + 2))
done
echo "still running after ${deadline}s: $*"
exit 1
