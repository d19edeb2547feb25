#!/usr/bin/env bash
# Builds the reference image, a raw GPT disk for UEFI machines: x86_64 (QEMU with OVMF, PCs) or
# arm64 (QEMU virt with AAVMF, UEFI arm64 boards), from one layout (qemu/layout.sh):
#
#   ESP (systemd-boot, each slot's kernel and initrd) | rootfs-a (Debian 12 + mcp-gateway,
#   read-only) | rootfs-b (empty until the first update) | data (state, /etc and /var changes)
#
# The root file system is also written alone, as the image that update bundles carry
# (qemu/build-bundle.sh), and for arm64 the Raspberry Pi card (qemu/build-pi-card.sh); docs/OTA.md
# describes the layout.
#
# Built from Debian packages, this checkout's release binary, systemd/ and rootfs-overlay/. Every
# file system is built as a file (mkfs.ext4 -d, mkfs.vfat + mcopy) and copied into the disk
# with dd: no loop devices, no mounts. With the same inputs and SOURCE_DATE_EPOCH two builds
# are bit-identical.
#
#   bash qemu/build-image.sh [OUTPUT_DIR]        (default .cache/image, .cache/image-arm64)
#
# Writes OUTPUT_DIR/mcp-edge-ARCH.img and its .sha256, OUTPUT_DIR/rootfs.ext4, and the build's
# version, compatible and source-date-epoch. Environment:
#   MCP_EDGE_ARCH=arm64         build for arm64 (default amd64): the gateway cross-built, the
#                               Debian tree made with qemu-user (scripts/common.sh,
#                               ensure_arm64_build)
#   MCP_EDGE_VERSION=V          the gateway's version, stamped into its binary (default: the
#                               crate's version); a new build for an update gets a new one,
#                               e.g. 0.1.0+2. At most 63 bytes.
#   MCP_EDGE_RAUC_KEYRING=F     the CA certificate bundles must chain to (default: the
#                               development CA of qemu/ota-keys.sh, made on first use)
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
cd "$repo_root"

arch=${MCP_EDGE_ARCH:-amd64}
# shellcheck source=layout.sh
source "$repo_root/qemu/layout.sh"
# The UEFI machines boot Debian's cloud kernel (the small one for virtual machines; it has the
# TIS driver for QEMU's TPM). The arm64 root file system also carries the generic kernel and
# the Raspberry Pi's boot firmware (non-free-firmware), which the Pi card boots
# (qemu/build-pi-card.sh): one root file system for both.
case "$arch" in
    amd64) out=${1:-$repo_root/.cache/image} root_type=$root_type_amd64
        efi_loader=systemd-bootx64.efi efi_boot=BOOTX64.EFI console=ttyS0,115200
        arch_packages=linux-image-cloud-amd64 components=main ;;
    arm64) out=${1:-$repo_root/.cache/image-arm64} root_type=$root_type_arm64
        efi_loader=systemd-bootaa64.efi efi_boot=BOOTAA64.EFI console=ttyAMA0,115200
        arch_packages=linux-image-cloud-arm64,linux-image-arm64,raspi-firmware components=main,non-free-firmware ;;
    *) die "MCP_EDGE_ARCH=$arch: amd64 or arm64" ;;
esac
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
export E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH
export TZ=UTC LC_ALL=C

# The RAUC compatible string: bundles for another machine are refused.
rauc_compatible=mcp-edge-$arch-uefi

ensure_image_tools "$arch"
require_cargo

keyring=${MCP_EDGE_RAUC_KEYRING:-}
if [ -z "$keyring" ]; then
    bash "$repo_root/qemu/ota-keys.sh" "$repo_root/.cache/ota-keys" >/dev/null
    keyring=$repo_root/.cache/ota-keys/ca.cert.pem
fi
[ -f "$keyring" ] || die "MCP_EDGE_RAUC_KEYRING=$keyring does not exist"

step "building mcp-gateway for $arch (release)"
built_gateway=$(build_gateway "$arch")

work=$(mktemp -d "${TMPDIR:-/tmp}/mcp-edge-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
gateway=$work/mcp-gateway
cp "$built_gateway" "$gateway"
if [ -n "${MCP_EDGE_VERSION:-}" ]; then
    # The same build, labelled, without compiling it again.
    bash "$repo_root/qemu/stamp-version.sh" "$gateway" "$MCP_EDGE_VERSION"
fi

step "bootstrapping Debian 12 with mmdebstrap (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)"
# The initrd is made once, after every package is in (under qemu-user each run takes minutes):
# INITRD=No keeps the kernel's postinst from making one that initramfs-tools' trigger would
# make again; the customize hook makes it if no trigger did. Its configuration
# (qemu/initramfs-tools: which modules) is in place before initramfs-tools is installed.
# /usr is merged by mmdebstrap's merged-usr hook (directory symlinks, as debootstrap makes
# them), not by the usrmerge package, which would pull Perl into the image.
# Left out: documentation; kernel modules a headless gateway has no use for (sound, video
# capture, InfiniBand, the large desktop GPU drivers, network and cluster file systems and
# their RPC layer and caches, storage targets and caches, data-acquisition boards, a
# hypervisor's own modules, data-centre NICs and protocols); udev's hardware database (names
# and quirks for keyboards, mice, USB and PCI devices: no rule of a headless gateway needs
# them); and glibc's character set converters but the code pages fsck.fat reads the ESP with.
unused_modules=(
    sound drivers/media drivers/infiniband drivers/gpu/drm/amd drivers/gpu/drm/nouveau
    drivers/gpu/drm/radeon fs/xfs fs/btrfs fs/nfs fs/nfsd fs/smb fs/ceph fs/ocfs2 fs/gfs2
    fs/orangefs fs/lockd fs/cachefiles net/ceph net/sunrpc drivers/comedi drivers/target
    drivers/nvme/target drivers/md/bcache drivers/block/drbd arch/x86/kvm drivers/vhost
    drivers/vfio drivers/net/ethernet/mellanox net/tipc net/rds net/smc net/dccp net/openvswitch
)
image_excludes=(--dpkgopt='path-exclude=/lib/udev/hwdb.d/*' --dpkgopt='path-exclude=/usr/lib/*/gconv/*')
for path in "${unused_modules[@]}"; do
    image_excludes+=(--dpkgopt="path-exclude=/lib/modules/*/kernel/$path/*")
done
for kept in 'gconv-modules*' 'gconv-modules.d/*' IBM437.so IBM850.so; do
    image_excludes+=(--dpkgopt="path-include=/usr/lib/*/gconv/$kept")
done
# shellcheck disable=SC2016 # $1 is the hook's: mmdebstrap passes the tree's path
INITRD=No mmdebstrap --variant=minbase --mode=root --format=directory --architectures="$arch" \
    --components="$components" --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --essential-hook='mkdir -p "$1/etc/initramfs-tools"' \
    --essential-hook="sync-in \"$repo_root/qemu/initramfs-tools\" /etc/initramfs-tools" \
    --include=systemd,systemd-sysv,udev,dbus,systemd-boot-efi,$arch_packages,initramfs-tools,zstd,tpm2-tools,iproute2,ca-certificates,qemu-guest-agent,rauc,rauc-service,e2fsprogs,dosfstools \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    "${image_excludes[@]}" --skip=cleanup/apt \
    --customize-hook="$repo_root/qemu/customize-rootfs.sh \"\$1\" \"$repo_root\" \"$gateway\" \"$rauc_compatible\" \"$keyring\" \"$console\"" \
    bookworm "$rootfs"

step "ESP: systemd-boot, slot a's kernel, initrd and boot entry"
esp_tree=$work/esp
mkdir -p "$esp_tree/EFI/BOOT" "$esp_tree/loader/entries"
cp "$rootfs/usr/lib/systemd/boot/efi/$efi_loader" "$esp_tree/EFI/BOOT/$efi_boot"
# No "default": systemd-boot boots the first entry in its order, which the RAUC backend keeps.
printf 'timeout 0\n' >"$esp_tree/loader/loader.conf"
"$repo_root/rootfs-overlay/usr/lib/mcp-edge/rauc-systemd-boot" seed "$esp_tree" "$rootfs" a "$root_a_uuid"
make_fat "$work/esp.img" ESP "$esp_serial" "$esp_tree"

step "root file systems (ext4 from the tree, no mount)"
# Clamp modification times to SOURCE_DATE_EPOCH and set every access time to it: the build
# reads files, and mkfs.ext4 -d copies access times into the image.
find "$rootfs" -newermt "@$SOURCE_DATE_EPOCH" -exec touch -h -m -d "@$SOURCE_DATE_EPOCH" {} +
find "$rootfs" -exec touch -h -a -d "@$SOURCE_DATE_EPOCH" {} +
mkfs.ext4 -q -d "$rootfs" -U "$fs_root_a" -L rootfs -E "hash_seed=$fs_root_a,root_owner=0:0" \
    "$work/root-a.img" "${root_mib}M"
# mkfs.ext4 -d copies each file's change time, which is when this build touched it; set them
# all to SOURCE_DATE_EPOCH in the image (debugfs edits the file, no mount).
(cd "$rootfs" && find . -print0 | sort -z | tr '\0' '\n' | sed 's|^\.||; s|^$|/|; s|.*|sif "&" ctime @'"$SOURCE_DATE_EPOCH"'|') \
    >"$work/ctimes.debugfs"
debugfs -w -f "$work/ctimes.debugfs" "$work/root-a.img" >/dev/null 2>"$work/debugfs.log" ||
    die "debugfs failed: $(tail -n 5 "$work/debugfs.log")"
make_empty_slots "$work"

step "GPT disk"
image=$out/mcp-edge-$arch.img
new_disk "$image"
sfdisk --quiet "$image" <<TABLE
label: gpt
label-id: $disk_guid
unit: sectors
first-lba: 2048

start=2048, size=$((boot_mib * 2048)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$esp_uuid, name="esp"
size=$((root_mib * 2048)), type=$root_type, uuid=$root_a_uuid, name="rootfs-a"
size=$((root_mib * 2048)), type=$root_type, uuid=$root_b_uuid, name="rootfs-b"
size=$((data_mib * 2048)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$data_uuid, name="data"
TABLE
write_partitions "$image" "$work/esp.img" "$work/root-a.img" "$work/root-b.img" "$work/data.img"

cp --sparse=always "$work/root-a.img" "$out/rootfs.ext4"
"$gateway" --version | awk '{ print $2 }' >"$out/version"
echo "$rauc_compatible" >"$out/compatible"
echo "$SOURCE_DATE_EPOCH" >"$out/source-date-epoch"
record_disk "$image"
