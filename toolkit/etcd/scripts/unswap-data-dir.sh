#!/bin/sh
# Roll a member's data directory back: the restored one goes aside as FAILED_DIR, the one
# kept before the restore comes back, and anything staged is removed. Safe to run again,
# and on a member that was never swapped.
# Usage: unswap-data-dir.sh DATA_DIR OLD_DIR FAILED_DIR RESTORED_DIR STAGED_SNAPSHOT
set -eu
data=$1 old=$2 failed=$3 restored=$4 staged=$5
if [ -d "$old" ]; then
  if [ -e "$data" ]; then mv "$data" "$failed"; fi
  mv "$old" "$data"
fi
rm -rf "$restored" "$staged"
