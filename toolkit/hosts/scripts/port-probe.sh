#!/bin/bash
# Whether this host reaches each ADDRESS:PORT over TCP, every probe at once and each
# bounded by SECONDS. A refused connection counts as reached (the packet got there and
# back: nothing listens yet before provisioning); a timeout means something drops it.
# Prints `ADDRESS PORT open|refused|timeout|unreachable` per probe.
# Usage: port-probe.sh SECONDS ADDRESS:PORT...
set -u
seconds=$1
shift
for target in "$@"; do
  (
    address=${target%:*} port=${target##*:}
    error=$(timeout "$seconds" bash -c "exec 3<>/dev/tcp/$address/$port" 2>&1)
    case $? in
      0) verdict=open ;;
      124) verdict=timeout ;;
      *) case $error in *refused*) verdict=refused ;; *) verdict=unreachable ;; esac ;;
    esac
    echo "$address $port $verdict"
  ) &
done
wait
