# shellcheck shell=bash disable=SC2034,SC2154 # variables for the scripts that source this; repo_root and step are common.sh's
# The disk layout every mcp-edge image built here shares (docs/IMAGE.md), sourced by
# build-image.sh (GPT, for UEFI machines) and build-pi-card.sh (MBR, for the Raspberry Pi):
#
#   boot (ESP or Pi firmware) | rootfs-a | rootfs-b (empty until the first update) | data
#
# Sizes, and the fixed identities that make two builds of the same inputs identical. (Images
# for a fleet keep these: a device's identity comes from its TPM and machine-id, not its
# partition UUIDs.) Source it after scripts/common.sh, with $arch set (amd64 or arm64) where
# the sizes matter; do not run it.

boot_mib=128
# arm64's root file system carries two kernels (docs/IMAGE.md).
case ${arch:-} in
    arm64) root_mib=1024 ;;
    *) root_mib=768 ;;
esac
data_mib=256
# The whole disk: 1 MiB before the first partition, 1 MiB after the last (the GPT's backup).
disk_mib=$((1 + boot_mib + 2 * root_mib + data_mib + 1))

# GPT partition types of the root slots (the Discoverable Partitions Specification's).
root_type_amd64=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709
root_type_arm64=B921B045-1DF0-41C3-AF44-4C6F280D3FAE

# GPT (build-image.sh): disk and partition GUIDs.
disk_guid=6f1b7b3e-2c1d-4e5a-9c34-5d8e0a7b1c01
esp_uuid=6f1b7b3e-2c1d-4e5a-9c34-5d8e0a7b1c11
root_a_uuid=6f1b7b3e-2c1d-4e5a-9c34-5d8e0a7b1c12
root_b_uuid=6f1b7b3e-2c1d-4e5a-9c34-5d8e0a7b1c13
data_uuid=6f1b7b3e-2c1d-4e5a-9c34-5d8e0a7b1c14
# MBR (build-pi-card.sh): the disk identifier; partition n is PARTUUID=<id>-0n.
pi_disk_id=4d434532
# File systems: ext4 UUIDs (also their hash seeds) and FAT volume serials.
fs_root_a=0c6a1f42-9d3b-4f6e-8a27-3e5b9d1c7f21
fs_root_b=0c6a1f42-9d3b-4f6e-8a27-3e5b9d1c7f22
fs_data=0c6a1f42-9d3b-4f6e-8a27-3e5b9d1c7f23
esp_serial=4d434531
pi_firmware_serial=4d434533

# make_empty_slots DIR: DIR/root-b.img and DIR/data.img, the empty rootfs-b and data file
# systems (E2FSPROGS_FAKE_TIME fixes their timestamps).
make_empty_slots() {
    mkfs.ext4 -q -U "$fs_root_b" -L rootfs-b -E "hash_seed=$fs_root_b,root_owner=0:0" "$1/root-b.img" "${root_mib}M"
    mkfs.ext4 -q -U "$fs_data" -L data -E "hash_seed=$fs_data,root_owner=0:0" "$1/data.img" "${data_mib}M"
}

# make_fat IMAGE LABEL SERIAL TREE [MKFS_OPTION...]: a boot_mib FAT file system with TREE's
# files, every time in it SOURCE_DATE_EPOCH (mtools stamps entries with the current time).
make_fat() {
    local image=$1 label=$2 serial=$3 tree=$4
    shift 4
    mkfs.vfat "$@" -C -i "$serial" -n "$label" "$image" $((boot_mib * 1024)) >/dev/null
    (cd "$tree" && mcopy -s -m -i "$image" ./* ::/)
    python3 "$repo_root/qemu/fat-timestamps.py" "$image" "$SOURCE_DATE_EPOCH"
}

# new_disk DISK: an empty (sparse) file of disk_mib for the partition table.
new_disk() {
    mkdir -p "$(dirname "$1")"
    rm -f "$1"
    truncate -s "${disk_mib}M" "$1"
}

# write_partitions DISK FILE...: copies each file system into DISK one after the other from
# 1 MiB on, as the partition table (made to the same sizes) expects; zero blocks stay holes.
write_partitions() {
    local disk=$1 offset=1 part
    shift
    for part in "$@"; do
        dd if="$part" of="$disk" bs=1M seek="$offset" conv=notrunc,sparse status=none
        offset=$((offset + $(stat -c %s "$part") / 1048576))
    done
}

# record_disk DISK: DISK.sha256 beside it, and the log line that names the build.
record_disk() {
    (cd "$(dirname "$1")" && sha256sum "$(basename "$1")" >"$(basename "$1").sha256")
    step "built $1 ($(du -h --apparent-size "$1" | cut -f1), sha256 $(cut -d' ' -f1 "$1.sha256"))"
}
