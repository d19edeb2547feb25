#!/usr/bin/env python3
"""Writes the seed inputs of each fuzz target into fuzz/corpus/TARGET/ (docs/FUZZING.md):
well-formed examples the fuzzer mutates from. Run again after changing it; the files are
committed, and so is what a longer run adds to the corpus.

    python3 fuzz/seeds.py
"""

import base64
import hashlib
import json
import struct
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
REPO = FUZZ.parent
EV_NO_ACTION = 3


def write(target, name, data):
    folder = FUZZ / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def rpc(method, params=None, id_=1):
    message = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message)


META = {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}


def mcp_messages():
    write("mcp_message", "handshake", "\n".join([
        rpc("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                           "clientInfo": {"name": "seed", "version": "1"}}),
        json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        rpc("tools/list", id_=2),
        rpc("tools/call", {"name": "route_request", "arguments": {
            "routing": "local_first", "fallback_threshold_ms": 500,
            "local": {"pending": 1, "max_queued": 2, "estimated_first_token_ms": 80},
            "cloud": {"available": True}}}, id_=3),
    ]) + "\n")
    write("mcp_message", "stateless", "\n".join([
        rpc("server/discover", dict(META)),
        rpc("tools/call", {**META, "name": "queue_encode",
                           "arguments": {"payload": {"a": [1, 2, 3]}, "codec": "lz4"}}, id_="x"),
        rpc("tools/call", {**META, "name": "queue_decode",
                           "arguments": {"codec": "lz4", "stored_base64": "BQAAAFBoZWxsbw=="}}, id_=4),
    ]) + "\n")
    write("mcp_message", "errors", '{"jsonrpc":"2.0","id":1,"method":"ping"}\n[1,2]\n{"id":null}\n')


def config_files():
    write("config_file", "example.toml", (REPO / "docs" / "mcp-edge.example.toml").read_bytes())
    write("config_file", "device.toml",
          (REPO / "rootfs-overlay" / "etc" / "mcp" / "mcp-edge.toml").read_bytes())


def firmware_log():
    spec = b"Spec ID Event03\0" + bytes([0, 0, 0, 0, 0, 2, 0, 2]) + struct.pack("<I", 2)
    spec += bytes([0x04, 0x00, 20, 0x00, 0x0B, 0x00, 32, 0x00, 0])
    log = struct.pack("<II", 0, EV_NO_ACTION) + bytes(20) + struct.pack("<I", len(spec)) + spec

    def record(pcr, event_type, sha256, data):
        return (struct.pack("<III", pcr, event_type, 2) + bytes([0x04, 0x00]) + bytes([0xAA] * 20)
                + bytes([0x0B, 0x00]) + sha256 + struct.pack("<I", len(data)) + data)

    log += record(0, EV_NO_ACTION, bytes(32), b"StartupLocality\0\x03")
    for pcr, event_type in [(0, 0x8), (7, 0x800000E0), (4, 0x80000003), (0, 0x4)]:
        log += record(pcr, event_type, hashlib.sha256(bytes([pcr, event_type & 0xFF])).digest(),
                      b"event data")
    write("firmware_event_log", "synthetic", log)


def evidence():
    # The shape the gateway answers /v1/attestation with, the firmware log above included; the
    # key and signature are not a device's, so verification stops at the signature.
    der = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200") + bytes([4]) + bytes(range(64))
    pem = "-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(der).decode() + "\n-----END PUBLIC KEY-----\n"
    firmware = (FUZZ / "corpus" / "firmware_event_log" / "synthetic").read_bytes()
    write("attestation_evidence", "shape.json", json.dumps({
        "nonce": "00112233445566778899aabbccddeeff",
        "pcr_bank": "sha256",
        "pcrs": {"0": "00" * 32, "7": "07" * 32, "23": "11" * 32},
        "application_pcr": 23,
        "quote": base64.b64encode(b"\xffTCG\x80\x18" + bytes(64)).decode(),
        "signature": base64.b64encode(b"\x00\x18\x00\x0b\x00\x20" + bytes(32) + b"\x00\x20" + bytes(32)).decode(),
        "attestation_key": pem,
        "ek_certificate": None,
        "event_logs": {"firmware": base64.b64encode(firmware).decode(), "application": []},
    }, indent=2))


def lz4_literals(data):
    """An LZ4 block holding `data` as one run of literals (valid, if not compressed)."""
    n = len(data)
    if n < 15:
        return bytes([n << 4]) + data
    rest = n - 15
    return bytes([0xF0]) + b"\xff" * (rest // 255) + bytes([rest % 255]) + data


def queue_entries():
    payload = json.dumps({"messages": [{"role": "user", "content": "status? " * 20}]}).encode()
    # The first byte picks the codec: even lz4 (the raw length prepended), odd none.
    write("queue_entry", "none", b"\x01" + payload)
    write("queue_entry", "lz4", b"\x00" + struct.pack("<I", len(payload)) + lz4_literals(payload))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def request_heads():
    # Two bytes of key-set length (little-endian), the key set, then the head as text.
    jwks = json.dumps({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "k1", "x": b64url(bytes(range(32))),
         "y": b64url(bytes(range(32, 64)))},
        {"kty": "RSA", "kid": "r1", "n": b64url(bytes([0xC1]) + bytes(255)), "e": "AQAB"},
    ]}).encode()
    jwt = ".".join([b64url(json.dumps({"alg": "ES256", "kid": "k1", "typ": "JWT"}).encode()),
                    b64url(json.dumps({"iss": "https://auth.example", "aud": "https://device.example/mcp",
                                       "exp": 4102444800, "scope": "mcp", "client_id": "fleet"}).encode()),
                    b64url(bytes(64))])

    def head(name, keys, lines):
        write("http_request_head", name, struct.pack("<H", len(keys)) + keys + "\n".join(lines).encode())

    head("static_client", b"", ["POST /mcp", "host: localhost:8080", "authorization: Bearer fuzz-token",
                                "content-length: 120", "origin: http://localhost:8080"])
    head("oauth_jwt", jwks, ["GET /metrics", "host: [::1]:8080", f"authorization: Bearer {jwt}"])
    head("refused", b"", ["PUT /v1/power", "host: evil.example", "authorization: bearer nope",
                          "content-length: 99999999999"])


if __name__ == "__main__":
    mcp_messages()
    config_files()
    firmware_log()
    evidence()
    queue_entries()
    request_heads()
