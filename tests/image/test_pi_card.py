"""The Raspberry Pi 4 card (qemu/build-pi-card.sh), made from the arm64 image under test.

No QEMU here runs a Pi's boot firmware, so the card is checked from the outside: its partition
table against the reference image's, the files on its firmware partition and what they point
at, that its root file system is the very one the arm64 VM of these tests booted, that its
block map restores it, and that assembling it again gives the same bytes.
"""

import hashlib
import json
import re
import subprocess

import pytest

from conftest import IMAGE_DIR, REPO, guest_exec, sha256_file

SECTOR = 512
DISK_ID = "0x4d434532"  # qemu/layout.sh, pi_disk_id


def partitions(disk):
    table = json.loads(subprocess.run(["sfdisk", "--json", str(disk)], check=True, capture_output=True,
                                      text=True).stdout)["partitiontable"]
    return table, table["partitions"]


def partition_sha256(disk, part):
    digest = hashlib.sha256()
    with open(disk, "rb") as f:
        f.seek(part["start"] * SECTOR)
        left = part["size"] * SECTOR
        while left:
            block = f.read(min(left, 1 << 20))
            assert block, f"{disk} ends inside a partition"
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def firmware(card, tmp_path_factory):
    """The firmware partition, copied out of the card, and the names of the files on it."""
    _, parts = partitions(card)
    path = tmp_path_factory.mktemp("firmware") / "firmware.img"
    subprocess.run(["dd", f"if={card}", f"of={path}", f"bs={SECTOR}", f"skip={parts[0]['start']}",
                    f"count={parts[0]['size']}", "status=none"], check=True)
    listing = subprocess.run(["mdir", "-i", str(path), "-b", "::/"], check=True, capture_output=True, text=True).stdout
    names = {line.rsplit("/", 1)[-1] for line in listing.split()}
    return path, names


def fat_read(image, name):
    return subprocess.run(["mtype", "-i", str(image), f"::/{name}"], check=True, capture_output=True).stdout


def rootfs_read(path):
    out = subprocess.run(["debugfs", "-R", f"cat {path}", str(IMAGE_DIR / "rootfs.ext4")], check=True,
                         capture_output=True).stdout
    assert out, f"{path} is missing or empty in the root file system"
    return out


def test_the_card_has_the_reference_layout_on_mbr(card, image):
    table, parts = partitions(card)
    assert table["label"] == "dos" and table["id"] == DISK_ID, table
    assert [p["type"] for p in parts] == ["c", "83", "83", "83"], parts  # FAT32 (LBA), Linux x3
    assert parts[0].get("bootable") is True
    _, reference = partitions(image)
    assert [(p["start"], p["size"]) for p in parts] == [(p["start"], p["size"]) for p in reference]


def test_its_root_file_system_is_the_one_the_arm64_vm_booted(card, image):
    _, parts = partitions(card)
    _, reference = partitions(image)
    # rootfs-a, and the empty rootfs-b and data, byte for byte those of the image the VM runs.
    for number in (1, 2, 3):
        assert partition_sha256(card, parts[number]) == partition_sha256(image, reference[number]), \
            f"partition {number + 1} differs from the arm64 image's"
    assert partition_sha256(card, parts[1]) == sha256_file(IMAGE_DIR / "rootfs.ext4")


def test_the_firmware_partition_boots_that_root_file_system(card, firmware, vm):
    path, names = firmware
    # The GPU firmware of a Pi 4 (start4/fixup4) and of older boards, and the Pi 4's device tree.
    assert {"start4.elf", "fixup4.dat", "bootcode.bin", "start.elf", "bcm2711-rpi-4-b.dtb"} <= names, names

    config = fat_read(path, "config.txt").decode()
    assert "arm_64bit=1" in config.splitlines()
    kernel = re.search(r"^kernel=(\S+)$", config, re.M).group(1)
    initrd = re.search(r"^initramfs (\S+)$", config, re.M).group(1)
    assert {kernel, initrd} <= names, (kernel, initrd, names)
    # The kernel and initrd are the root file system's own: its generic kernel, the same build of
    # Debian's kernel as the cloud flavour the arm64 VM runs.
    release = kernel.removeprefix("vmlinuz-")
    _, running = guest_exec(vm, ["/usr/bin/uname", "-r"])
    assert running.strip() == release.replace("-arm64", "-cloud-arm64"), (running, release)
    assert fat_read(path, kernel) == rootfs_read(f"/boot/{kernel}")
    assert fat_read(path, initrd) == rootfs_read(f"/boot/initrd.img-{release}")
    assert fat_read(path, "bcm2711-rpi-4-b.dtb") == rootfs_read(f"/usr/lib/linux-image-{release}/broadcom/bcm2711-rpi-4-b.dtb")

    cmdline = fat_read(path, "cmdline.txt").decode().split()
    assert f"root=PARTUUID={DISK_ID[2:]}-02" in cmdline, cmdline  # partition 2, rootfs-a
    assert {"ro", "rootwait", "rauc.slot=a", "init=/usr/lib/mcp-edge/data-init", "console=ttyS1,115200"} <= set(cmdline)


def test_the_block_map_restores_the_card(card, tmp_path):
    restored = tmp_path / "restored.img"
    # bmaptool checks every mapped range against the checksum in the map as it writes.
    subprocess.run(["bmaptool", "--quiet", "copy", "--bmap", f"{card}.bmap", str(card), str(restored)], check=True)
    assert sha256_file(restored) == sha256_file(card)


def test_a_second_card_from_the_same_build_is_bit_identical(card, tmp_path):
    subprocess.run(["bash", str(REPO / "qemu" / "build-pi-card.sh"), str(IMAGE_DIR), str(tmp_path)], check=True)
    assert sha256_file(tmp_path / card.name) == sha256_file(card)
