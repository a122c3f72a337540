#!/bin/sh
# Pin the images of these static Pods in containerd, so that the image garbage collector
# cannot remove them while the Pods are stopped (there is no registry to pull them from
# again). A missing image is an error.
# Usage: pin-images.sh MANIFESTS_DIR POD...
set -eu
dir=$1
shift
for pod in "$@"; do
  for image in $(sed -n 's/^ *image: *//p' "$dir/$pod.yaml"); do
    ctr -n k8s.io images ls -q | grep -qxF "$image" || { echo "image $image is not in containerd"; exit 1; }
    ctr -n k8s.io images label "$image" io.cri-containerd.pinned=pinned >/dev/null
  done
done
