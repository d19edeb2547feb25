#!/usr/bin/env bash
# Boots the reference image in QEMU the way a device boots: UEFI firmware (OVMF on x86_64, AAVMF
# on arm64's virt machine) and systemd-boot, with a software TPM (swtpm, its own state per boot)
# so the firmware and loader measure the boot chain. The gateway's port 8080 is forwarded to a
# free port on 127.0.0.1.
#
#   bash qemu/run.sh [IMAGE]          (default .cache/image/mcp-edge-amd64.img)
#
# The architecture is the image's (an arm64 image boots in qemu-system-aarch64).
#
# The console is this terminal (Ctrl-A X quits QEMU). Environment:
#   MCP_EDGE_PORT=N      host port for the gateway (default: a free one)
#   MCP_EDGE_SERIAL=F    write the console to F instead of this terminal
#   MCP_EDGE_STATE=D     keep the TPM state and firmware variables in D (default: a temp dir);
#                        D/qmp.sock is QEMU's QMP socket (for example to power the guest off),
#                        D/qga.sock the guest agent's (to run a command in the guest)
#   MCP_EDGE_ACCEL=kvm   use KVM (default tcg: KVM hangs or aborts on the nested build machines)
#   MCP_EDGE_EXTRA_DISK=F  attach file F as a second, read-only disk (/dev/vdb in the guest;
#                        the OTA tests bring their bundles in this way)
#   MCP_EDGE_WRITABLE=1  write to IMAGE itself, as a device writes its disk, and power the
#                        machine on again after a guest reboot (for updates; default: writes go
#                        to a throw-away snapshot and a reboot ends QEMU). Boot a copy: the
#                        image changes. The console goes to MCP_EDGE_SERIAL or D/console.log.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
cd "$repo_root"

image=${1:-$repo_root/.cache/image/mcp-edge-amd64.img}
[ -f "$image" ] || die "$image is missing: build it with bash qemu/build-image.sh"
# The architecture is the image's, read from its root partition's GPT type (a copy of an
# image may have any name).
# shellcheck source=layout.sh
source "$repo_root/qemu/layout.sh"
ensure_apt_packages fdisk
case "$(sfdisk --part-type "$image" 2 2>/dev/null)" in
    "$root_type_arm64") arch=arm64 ;;
    "$root_type_amd64") arch=amd64 ;;
    *) die "$image has no x86-64 or arm64 root partition (GPT partition 2): not a reference image" ;;
esac
ensure_qemu "$arch"

state=${MCP_EDGE_STATE:-$(mktemp -d "${TMPDIR:-/tmp}/mcp-edge-vm.XXXXXX")}
mkdir -p "$state"
port=${MCP_EDGE_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}

# One TPM per machine, like one chip per device; its state persists in $state/tpm.
mkdir -p "$state/tpm"
swtpm_pid=""
start_tpm() {
    if [ -n "$swtpm_pid" ]; then
        kill "$swtpm_pid" 2>/dev/null || true
        wait "$swtpm_pid" 2>/dev/null || true
    fi
    rm -f "$state/swtpm.sock"
    swtpm socket --tpm2 --tpmstate dir="$state/tpm" --ctrl type=unixio,path="$state/swtpm.sock" \
        --flags startup-clear --log file="$state/swtpm.log" &
    swtpm_pid=$!
    for _ in $(seq 50); do [ -S "$state/swtpm.sock" ] && break; sleep 0.1; done
    [ -S "$state/swtpm.sock" ] || die "swtpm did not start: $(cat "$state/swtpm.log")"
}
trap '[ -z "$swtpm_pid" ] || kill "$swtpm_pid" 2>/dev/null || true' EXIT

if [ "$arch" = arm64 ]; then
    [ -f "$state/AAVMF_VARS.fd" ] || cp /usr/share/AAVMF/AAVMF_VARS.fd "$state/AAVMF_VARS.fd"
    machine=(qemu-system-aarch64 -machine virt -cpu cortex-a72
        -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd
        -drive if=pflash,format=raw,unit=1,file="$state/AAVMF_VARS.fd"
        -device tpm-tis-device,tpmdev=tpm0)
else
    [ -f "$state/OVMF_VARS.fd" ] || cp /usr/share/OVMF/OVMF_VARS_4M.fd "$state/OVMF_VARS.fd"
    machine=(qemu-system-x86_64 -machine q35 -cpu max
        -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd
        -drive if=pflash,format=raw,unit=1,file="$state/OVMF_VARS.fd"
        -device tpm-tis,tpmdev=tpm0)
fi
accel=${MCP_EDGE_ACCEL:-tcg}
disk=(-drive "file=$image,format=raw,if=virtio,snapshot=on")
writable=${MCP_EDGE_WRITABLE:-0}
serial_file=${MCP_EDGE_SERIAL:-}
if [ "$writable" = 1 ]; then
    disk=(-drive "file=$image,format=raw,if=virtio,cache=writeback")
    serial_file=${serial_file:-$state/console.log}
fi
[ -n "${MCP_EDGE_EXTRA_DISK:-}" ] && disk+=(-drive "file=$MCP_EDGE_EXTRA_DISK,format=raw,if=virtio,readonly=on")
serial=(-serial mon:stdio)
[ -n "$serial_file" ] && serial=(-chardev "file,id=console,path=$serial_file,append=on" -serial chardev:console)

echo "mcp-gateway will answer on http://127.0.0.1:$port (/health, /mcp); accelerator: $accel" >&2
boot() {
    "${machine[@]}" -accel "$accel" -smp 2 -m 1024 \
        -chardev socket,id=chrtpm,path="$state/swtpm.sock" -tpmdev emulator,id=tpm0,chardev=chrtpm \
        "${disk[@]}" \
        -netdev user,id=net0,hostfwd=tcp:127.0.0.1:"$port"-:8080 -device virtio-net-pci,netdev=net0 \
        -qmp unix:"$state/qmp.sock",server=on,wait=off \
        -device virtio-serial -chardev socket,id=qga0,path="$state/qga.sock",server=on,wait=off \
        -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0 \
        -display none -no-reboot "${serial[@]}"
}

# A guest reboot ends QEMU (-no-reboot). In writable mode the machine is then powered on again,
# as a device's reboot would: OVMF under TCG with two vCPUs sometimes hangs for good in early
# firmware after a warm reset (seen in the OTA tests), so every reboot is a cold start. The
# kernel's last console line tells a reboot ("Restarting system") from a power-off.
while :; do
    start_tpm
    boot
    [ "$writable" = 1 ] && grep -a 'reboot: ' "$serial_file" 2>/dev/null | tail -n 1 | grep -q 'Restarting system' ||
        break
    echo "guest rebooted; powering on again" >&2
    printf '\n[run.sh: guest rebooted, powering on again]\n' >>"$serial_file"
done
