#!/bin/sh
# The facts k8slab's preflight judges an existing host by, one `key=value` per line.
# Reads only: it loads no module (modprobe --dry-run) and changes nothing.
# Usage: host-facts.sh MODULE...
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
if [ -r /etc/os-release ]; then . /etc/os-release; fi
echo "os_id=${ID:-unknown}"
echo "os_version=${VERSION_ID:-unknown}"
echo "os_name=${PRETTY_NAME:-unknown}"
echo "arch=$(uname -m)"
echo "kernel=$(uname -r)"
echo "cpus=$(nproc 2>/dev/null || echo 0)"
echo "memory_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
echo "var_free_kib=$(df -Pk /var 2>/dev/null | awk 'NR == 2 {print $4}')"
echo "cgroup_fs=$(stat -fc %T /sys/fs/cgroup 2>/dev/null || echo none)"
echo "swap_kib=$(awk 'NR > 1 {s += $3} END {print s + 0}' /proc/swaps 2>/dev/null)"
echo "container=$(systemd-detect-virt --container 2>/dev/null || echo none)"
echo "systemd=$(systemctl is-system-running 2>/dev/null || true)"
echo "python3=$(command -v python3 || true)"
echo "sudo=$(sudo -n true 2>/dev/null && echo yes || echo no)"
echo "addresses=$(ip -o -4 address show 2>/dev/null | awk '{printf "%s%s=%s", sep, $2, $4; sep = " "}')"
active=""
for unit in systemd-timesyncd chrony chronyd ntpsec ntp openntpd; do
  if systemctl is-active --quiet "$unit" 2>/dev/null; then active="$unit"; break; fi
done
echo "time_sync=$active"
# A module is present when what it provides is there (loaded, or built in: a built-in
# module without parameters has no /sys/module entry, and a kernel may list no builtins).
present() {
  case $1 in
    overlay) grep -qw overlay /proc/filesystems ;;
    br_netfilter) [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] ;;
    *) [ -d "/sys/module/$1" ] ;;
  esac
}
builtin="/lib/modules/$(uname -r)/modules.builtin"
for module in "$@"; do
  if present "$module" || [ -d "/sys/module/$module" ]; then state=present
  elif [ -f "$builtin" ] && grep -q "/$module\.ko" "$builtin"; then state=present
  elif [ ! -e /proc/modules ]; then state=missing  # a kernel that loads no modules
  elif ! command -v modprobe >/dev/null 2>&1; then state=unknown
  elif modprobe --dry-run --quiet "$module" 2>/dev/null; then state=loadable
  else state=missing
  fi
  echo "module.$module=$state"
done
