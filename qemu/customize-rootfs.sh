#!/usr/bin/env bash
# mmdebstrap customize hook for the reference image: installs the gateway, the shared units and
# overlay and the RAUC configuration, and makes the tree reproducible.
# Arguments: ROOTFS REPO GATEWAY_BINARY RAUC_COMPATIBLE RAUC_KEYRING CONSOLE (the kernel console,
# ttyS0,115200 or ttyAMA0,115200)
set -euo pipefail
root=$1 repo=$2 gateway=$3 compatible=$4 keyring=$5 console=$6

# The initrd, once: build-image.sh installs the kernels with INITRD=No, so unless some package
# ran initramfs-tools' trigger (in the arm64 builds none did), it is made here.
for kernel in "$root"/boot/vmlinuz-*; do
    version=${kernel#"$root"/boot/vmlinuz-}
    [ -e "$root/boot/initrd.img-$version" ] || chroot "$root" update-initramfs -c -k "$version" >/dev/null
done
# raspi-firmware's hooks copy the firmware, kernel and initrd into /boot/firmware (the Pi's
# firmware partition, made by qemu/build-pi-card.sh from this tree): left empty here, not
# carried twice.
[ ! -d "$root/boot/firmware" ] || find "$root/boot/firmware" -mindepth 1 -delete

install -D -m 0755 "$gateway" "$root/usr/bin/mcp-gateway"
for unit in mcp-gateway.service mcp-gateway.socket mcp-gateway-cpufreq.path mcp-gateway-cpufreq.service \
    mcp-gateway-mark-good.service; do
    install -D -m 0644 "$repo/systemd/$unit" "$root/usr/lib/systemd/system/$unit"
done
install -D -m 0644 "$repo/systemd/mcp-gateway-tpm.conf" "$root/usr/lib/systemd/system/mcp-gateway.service.d/tpm.conf"
cp -a --no-preserve=ownership "$repo/rootfs-overlay/." "$root/"
# The gateway's static system user (usr/lib/sysusers.d/mcp-edge.conf), made now so that its
# uid is the same on every device of a build.
chroot "$root" systemd-sysusers >/dev/null

echo mcp-edge >"$root/etc/hostname"
mkdir -p "$root/boot/efi" "$root/data"
# The slot's kernel command line after root= and rauc.slot=, copied into its boot entry.
echo "ro rootwait init=/usr/lib/mcp-edge/data-init console=$console quiet" >"$root/etc/kernel/cmdline"

install -d "$root/etc/rauc"
install -m 0644 "$keyring" "$root/etc/rauc/keyring.pem"
sed -e "s|@COMPATIBLE@|$compatible|" -e "s|@KEYRING@|/etc/rauc/keyring.pem|" "$repo/rauc/system.conf.in" \
    >"$root/etc/rauc/system.conf"

cat >"$root/etc/systemd/network/20-wired.network" <<NET
[Match]
Name=en* eth*

[Network]
DHCP=yes
NET

chroot "$root" systemctl enable systemd-networkd.service mcp-gateway.socket mcp-gateway.service \
    mcp-gateway-cpufreq.path mcp-gateway-mark-good.service >/dev/null
# The RAUC backend is the one writer of boot counters (mcp-gateway-mark-good.service drops them
# through rauc status mark-good); systemd's own blessing would mark a slot good without asking
# whether the gateway is healthy.
chroot "$root" systemctl mask systemd-bless-boot.service >/dev/null
# Each device generates its own machine-id on first boot (kept in the /etc overlay on /data).
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# apt and what only it uses: a device is updated whole, by signed bundles (docs/OTA.md), never
# package by package, and its root is read-only. build-image.sh skips mmdebstrap's apt cleanup.
rm -rf "$root/var/log/apt"
chroot "$root" dpkg --purge apt libapt-pkg6.0 gpgv debian-archive-keyring >/dev/null
# Caches and logs that differ between builds, and apt's lists and the packages mmdebstrap
# downloaded (installed, so only dead weight).
rm -rf "$root/var/cache/apt" "$root/var/lib/apt" "$root/var/log/"* "$root/tmp/"*
# The journal persists (journald.conf.d/60-mcp-edge.conf), on /data through the /var overlay.
chroot "$root" install -d -m 2755 -g systemd-journal /var/log/journal
rm -f "$root/etc/ssh/ssh_host_"* "$root/var/cache/ldconfig/aux-cache"
