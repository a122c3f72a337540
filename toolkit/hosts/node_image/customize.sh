#!/bin/sh
# Runs inside the debootstrapped root filesystem (chroot) to make it a lab host:
# systemd as PID 1 in a container, sshd with per-lab keys, a sudo-capable login user.
set -eu

login_user="$1"

# A container has no consoles, no udev and no kernel to tune; these units only fail there.
for unit in getty.target console-getty.service systemd-udevd.service \
            systemd-udev-trigger.service systemd-modules-load.service \
            systemd-remount-fs.service sys-kernel-config.mount \
            sys-kernel-debug.mount sys-kernel-tracing.mount; do
  ln -sf /dev/null "/etc/systemd/system/$unit"
done
ln -sf /lib/systemd/system/multi-user.target /etc/systemd/system/default.target

# Baked-in services start only where the roles configure them.
for unit in containerd.service haproxy.service keepalived.service; do
  systemctl disable "$unit" >/dev/null 2>&1 || true
done

# Every host must get its own machine-id (the kubelet reads it) and its own SSH host keys.
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id /etc/ssh/ssh_host_*
cat > /etc/systemd/system/ssh-host-keys.service <<'UNIT'
[Unit]
Description=Generate this host's own SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/ssh-host-keys.service \
       /etc/systemd/system/multi-user.target.wants/ssh-host-keys.service

# The lab's public key is mounted (docker) or written (VMs) into /etc/ssh/authorized_keys/,
# so one image serves every lab while each lab keeps its own key pair.
mkdir -p /etc/ssh/authorized_keys /etc/ssh/sshd_config.d
cat > /etc/ssh/sshd_config.d/k8slab.conf <<'CONF'
AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/authorized_keys/%u
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UseDNS no
CONF

useradd --create-home --shell /bin/bash "$login_user"
passwd --lock "$login_user" >/dev/null
echo "$login_user ALL=(ALL) NOPASSWD:ALL" > "/etc/sudoers.d/$login_user"
chmod 0440 "/etc/sudoers.d/$login_user"

apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log /etc/hostname
# Emptied lists must not look fresh: Ansible's apt cache_valid_time reads this folder's
# mtime, and would skip the update a role's first package install needs.
touch --date=@0 /var/lib/apt/lists
