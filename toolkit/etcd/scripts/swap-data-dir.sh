#!/bin/sh
# Put the restored data directory in place of the live one, which is kept aside for a
# rollback. Safe to run again: a member already swapped is left as it is.
# Usage: swap-data-dir.sh DATA_DIR RESTORED_DIR OLD_DIR STAGED_SNAPSHOT
set -eu
data=$1 restored=$2 old=$3 staged=$4
if [ -d "$restored" ]; then
  if [ -e "$data" ]; then
    if [ -e "$old" ]; then echo "both $data and $old exist; not swapping"; exit 1; fi
    mv "$data" "$old"
  fi
  mv "$restored" "$data"
elif [ ! -d "$old" ] || [ ! -d "$data" ]; then
  echo "neither the restored directory $restored nor a finished swap ($old) is here"
  exit 1
fi
rm -f "$staged"
