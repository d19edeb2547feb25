#!/usr/bin/env bash
# mmdebstrap customize hook for the reference image: installs the gateway, the shared units and
# overlay, and makes the tree reproducible.  Arguments: ROOTFS REPO ROOT_PARTUUID
set -euo pipefail
root=$1 repo=$2 root_partuuid=$3

install -D -m 0755 "$repo/target/release/mcp-gateway" "$root/usr/bin/mcp-gateway"
install -D -m 0644 "$repo/systemd/mcp-gateway.service" "$root/usr/lib/systemd/system/mcp-gateway.service"
install -D -m 0644 "$repo/systemd/mcp-gateway.socket" "$root/usr/lib/systemd/system/mcp-gateway.socket"
install -D -m 0644 "$repo/systemd/mcp-gateway-tpm.conf" "$root/usr/lib/systemd/system/mcp-gateway.service.d/tpm.conf"
install -D -m 0644 "$repo/systemd/mcp-gateway-cpufreq.path" "$root/usr/lib/systemd/system/mcp-gateway-cpufreq.path"
install -D -m 0644 "$repo/systemd/mcp-gateway-cpufreq.service" "$root/usr/lib/systemd/system/mcp-gateway-cpufreq.service"
cp -a --no-preserve=ownership "$repo/rootfs-overlay/." "$root/"

echo mcp-edge >"$root/etc/hostname"
cat >"$root/etc/fstab" <<FSTAB
PARTUUID=$root_partuuid / ext4 rw,noatime 0 1
LABEL=ESP /boot/efi vfat ro,noatime,umask=0077 0 2
LABEL=data /data ext4 noatime,nodev,nosuid,noexec 0 2
FSTAB
mkdir -p "$root/boot/efi" "$root/data"
cat >"$root/etc/systemd/network/20-wired.network" <<NET
[Match]
Name=en* eth*

[Network]
DHCP=yes
NET

chroot "$root" systemctl enable systemd-networkd.service mcp-gateway.socket mcp-gateway.service mcp-gateway-cpufreq.path >/dev/null
# Each device generates its own machine-id on first boot.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# Caches and logs that differ between builds.
rm -rf "$root/var/cache/apt/"*.bin "$root/var/lib/apt/lists/"* "$root/var/log/"* "$root/tmp/"*
rm -f "$root/etc/ssh/ssh_host_"* "$root/var/cache/ldconfig/aux-cache"
