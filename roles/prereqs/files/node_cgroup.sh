#!/bin/sh
# Creates this container node's cgroup in every mounted cgroup v1 hierarchy where it is
# missing; prints {"cgroup": PATH, "created": [DIRS]} for Ansible.
set -eu
node_cgroup=$(awk -F: '$2 == "cpuset" { print $3 }' /proc/1/cgroup)
mkdir -p /etc/k8slab
created=""
for hierarchy in $(findmnt --list --noheadings --types cgroup --output TARGET); do
  dir="$hierarchy$node_cgroup"
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir"
    created="$created${created:+,}\"$dir\""
  fi
done
printf '{"cgroup": "%s", "created": [%s]}\n' "$node_cgroup" "$created"
