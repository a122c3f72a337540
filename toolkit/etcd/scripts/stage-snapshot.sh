#!/bin/sh
# Restore a staged snapshot into a new data directory on this etcd member; nothing running
# is touched. etcdutl checks the snapshot's own hash while restoring, so a damaged file
# fails here. Prints etcdutl's JSON status of the snapshot on success.
# Usage: stage-snapshot.sh WORK_DIR FILE SHA256 RESTORED_DIR NAME INITIAL_CLUSTER TOKEN PEER_URL BUMP
set -eu
work_dir=$1 file=$2 sha=$3 restored=$4 name=$5 initial_cluster=$6 token=$7 peer_url=$8 bump=$9
cd "$work_dir"
printf '%s  %s\n' "$sha" "$file" | sha256sum --check --quiet
etcdutl snapshot restore --help 2>&1 | grep -q -- --bump-revision ||
  { echo 'this etcdutl has no --bump-revision; etcd >= 3.6 is needed'; exit 3; }
status=$(etcdutl snapshot status -w json "$file" 2>/dev/null) ||
  { echo 'etcdutl snapshot status cannot read it: truncated or damaged'; exit 4; }
echo "$status"
if [ -e "$restored" ]; then echo "$restored already exists"; exit 6; fi
out=$(etcdutl snapshot restore "$file" --name "$name" \
  --initial-cluster "$initial_cluster" --initial-cluster-token "$token" \
  --initial-advertise-peer-urls "$peer_url" --data-dir "$restored" \
  --bump-revision "$bump" --mark-compacted 2>&1) ||
  { echo "etcdutl snapshot restore: $(echo "$out" | grep -m1 Error)"; exit 5; }
