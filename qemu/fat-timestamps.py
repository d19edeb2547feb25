#!/usr/bin/env python3
"""Sets every timestamp in a FAT12/16/32 file system image to one instant.

    fat-timestamps.py IMAGE EPOCH_SECONDS

mtools stamps directory entries with the time they were created (creation, access and
write fields), which makes two otherwise identical builds differ. This rewrites the creation,
access and modification fields of every entry, recursively, to EPOCH (UTC), in place.
"""

import struct
import sys
import time


def fat_datetime(epoch):
    t = time.gmtime(epoch)
    date = ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday
    clock = (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2)
    return date, clock


def main(path, epoch):
    date, clock = fat_datetime(epoch)
    with open(path, "r+b") as f:
        image = bytearray(f.read())
        sector, per_cluster, reserved, fats, root_entries, total16, _, fat16_size = struct.unpack_from(
            "<HBHBHHBH", image, 11
        )
        fat32 = root_entries == 0
        fat_size = struct.unpack_from("<I", image, 36)[0] if fat32 else fat16_size
        total = total16 or struct.unpack_from("<I", image, 32)[0]
        fat_start = reserved * sector
        root_dir = fat_start + fats * fat_size * sector
        data = root_dir + root_entries * 32
        clusters = (total * sector - data) // (per_cluster * sector)
        kind = 32 if fat32 else (16 if clusters >= 4085 else 12)
        cluster_bytes = per_cluster * sector

        def next_cluster(n):
            if kind == 32:
                return struct.unpack_from("<I", image, fat_start + n * 4)[0] & 0x0FFFFFFF
            if kind == 16:
                return struct.unpack_from("<H", image, fat_start + n * 2)[0]
            value = struct.unpack_from("<H", image, fat_start + n * 3 // 2)[0]
            return value >> 4 if n & 1 else value & 0xFFF

        end = {32: 0x0FFFFFF8, 16: 0xFFF8, 12: 0xFF8}[kind]

        def chain(first):
            n = first
            while 2 <= n < end:
                yield data + (n - 2) * cluster_bytes
                n = next_cluster(n)

        def walk(regions):
            for start, length in regions:
                for entry in range(start, start + length, 32):
                    first = image[entry]
                    if first == 0x00:
                        return
                    attr = image[entry + 11]
                    if first == 0xE5 or attr == 0x0F:
                        continue
                    image[entry + 13] = 0
                    struct.pack_into("<HHH", image, entry + 14, clock, date, date)
                    struct.pack_into("<HH", image, entry + 22, clock, date)
                    name = bytes(image[entry:entry + 11])
                    if attr & 0x10 and name not in (b".          ", b"..         "):
                        low = struct.unpack_from("<H", image, entry + 26)[0]
                        high = struct.unpack_from("<H", image, entry + 20)[0] if kind == 32 else 0
                        walk((offset, cluster_bytes) for offset in chain(high << 16 | low))

        if fat32:
            walk((offset, cluster_bytes) for offset in chain(struct.unpack_from("<I", image, 44)[0]))
        else:
            walk([(root_dir, root_entries * 32)])
        f.seek(0)
        f.write(image)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
