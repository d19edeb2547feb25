#!/usr/bin/env bash
# Makes a development signing CA and a bundle signing key for RAUC bundles, once:
#
#   bash qemu/ota-keys.sh DIR      (the image build uses .cache/ota-keys)
#
# DIR/ca.cert.pem (the keyring the image trusts), DIR/signing.cert.pem and DIR/signing.key.pem
# (what qemu/build-bundle.sh signs with). These are for development and tests only: a fleet's
# CA and keys are made and kept offline (docs/OTA.md, "Keys"); nothing here is ever committed.
set -euo pipefail
dir=$1
[ -f "$dir/ca.cert.pem" ] && [ -f "$dir/signing.key.pem" ] && [ -f "$dir/signing.cert.pem" ] && exit 0
mkdir -p "$dir"
(
    umask 077
    cd "$dir"
    subject=${MCP_EDGE_KEY_SUBJECT:-mcp-edge development}
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/O=$subject/CN=$subject update CA" -keyout ca.key.pem -out ca.cert.pem \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/O=$subject/CN=$subject bundle signing" -keyout signing.key.pem -out signing.csr.pem 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n' >signing.ext
    openssl x509 -req -in signing.csr.pem -CA ca.cert.pem -CAkey ca.key.pem -CAcreateserial -days 3650 \
        -extfile signing.ext -out signing.cert.pem 2>/dev/null
    rm -f signing.csr.pem signing.ext ca.cert.srl
    chmod 0644 ca.cert.pem signing.cert.pem
)
echo "$dir"
