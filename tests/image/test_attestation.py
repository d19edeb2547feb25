"""The booted image's boot chain, quoted by its TPM (swtpm behind OVMF) and verified from the
host: the firmware's event log and the gateway's own log replay to the quoted PCRs, checked by
`mcp-gateway attest verify` and independently by tpm2_checkquote."""

import base64
import json
import re
import secrets
import struct
import subprocess

from conftest import REPO, guest_exec

GATEWAY = REPO / "target" / "release" / "mcp-gateway"


def verify(path, nonce):
    return subprocess.run([str(GATEWAY), "attest", "verify", str(path), "--nonce", nonce],
                          capture_output=True, text=True)


def tpm2_tools_pcr_file(pcrs):
    """The PCR file tpm2_quote -o writes and tpm2_checkquote -f reads (C structures, host order)."""
    ordered = sorted((int(k), bytes.fromhex(v)) for k, v in pcrs.items())
    bitmap = bytearray(4)
    for index, _ in ordered:
        bitmap[index // 8] |= 1 << (index % 8)
    data = struct.pack("<IHB", 1, 0x000B, 3) + bytes(bitmap) + b"\0" + bytes(15 * 8)
    groups = [ordered[i:i + 8] for i in range(0, len(ordered), 8)]
    data += struct.pack("<I", len(groups))
    for group in groups:
        data += struct.pack("<I", len(group))
        for slot in range(8):
            digest = bytearray(66)
            if slot < len(group):
                value = group[slot][1]
                digest[0:2] = struct.pack("<H", len(value))
                digest[2:2 + len(value)] = value
            data += bytes(digest)
    return data


def test_the_boot_chain_is_quoted_and_verified_from_the_host(vm, tmp_path):
    nonce = secrets.token_hex(20)
    status, evidence = vm.get(f"/v1/attestation?nonce={nonce}", timeout=60)
    assert status == 200
    assert evidence["event_logs"]["firmware"], "the evidence carries no firmware event log"
    evidence_file = tmp_path / "evidence.json"
    evidence_file.write_text(json.dumps(evidence))

    result = verify(evidence_file, nonce)
    print(f"\n{result.stdout}")
    assert result.returncode == 0, result.stderr
    lines = {int(line.split()[1]): line for line in result.stdout.splitlines() if line.startswith("PCR ")}
    for pcr in range(8):
        assert "firmware log replays to it" in lines[pcr], lines[pcr]
        assert set(evidence["pcrs"][str(pcr)]) != {"0"}, f"PCR {pcr} is all zero"
    assert "application log replays to it" in lines[23], lines[23]
    assert "gateway-binary" in result.stdout and "gateway-config" in result.stdout

    # The quote holds for its own nonce only.
    assert verify(evidence_file, secrets.token_hex(20)).returncode == 1

    # The guest's own view of the PCRs agrees with the quote.
    code, out = guest_exec(vm, ["/usr/bin/tpm2_pcrread", "sha256:0,7,23"])
    assert code == 0, out
    for pcr in ("0", "7", "23"):
        assert evidence["pcrs"][pcr].upper() in out, f"PCR {pcr}: quoted {evidence['pcrs'][pcr]}\n{out}"

    # tpm2_checkquote: signature, nonce and PCR digest, independently of our verifier.
    (tmp_path / "ak.pem").write_text(evidence["attestation_key"])
    (tmp_path / "quote.msg").write_bytes(base64.b64decode(evidence["quote"]))
    (tmp_path / "quote.sig").write_bytes(base64.b64decode(evidence["signature"]))
    (tmp_path / "pcrs.bin").write_bytes(tpm2_tools_pcr_file(evidence["pcrs"]))
    check = subprocess.run(["tpm2_checkquote", "-u", "ak.pem", "-m", "quote.msg", "-s", "quote.sig",
                            "-f", "pcrs.bin", "-g", "sha256", "-q", nonce],
                           cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr

    # tpm2_eventlog's own replay of the firmware log agrees with every PCR the log covers.
    # (tpm2_checkquote -e cannot be used: it expects the log to explain every quoted PCR, and
    # PCR 10 (IMA) and 23 (the gateway) are not in the firmware's log.)
    (tmp_path / "firmware.log").write_bytes(base64.b64decode(evidence["event_logs"]["firmware"]))
    replay = subprocess.run(["tpm2_eventlog", "firmware.log"], cwd=tmp_path, capture_output=True, text=True)
    assert replay.returncode == 0, replay.stderr
    bank = replay.stdout.split("pcrs:", 1)[1].split("sha256:", 1)[1]
    bank = re.split(r"^  \w+:$", bank, maxsplit=1, flags=re.M)[0]  # up to the next bank
    replayed = dict(re.findall(r"^\s+(\d+)\s*:\s*0x([0-9a-fA-F]{64})$", bank, re.M))
    assert set(map(int, replayed)) >= set(range(8)), replay.stdout[-2000:]
    for pcr, value in replayed.items():
        assert value.lower() == evidence["pcrs"][pcr], f"PCR {pcr}: tpm2_eventlog replays {value}"
