#!/usr/bin/env bash
# Builds the gateway (release profile, as images ship it) and runs it on the embedded
# defaults: http://127.0.0.1:8080, state under the per-user state directory.
# Extra arguments go to `mcp-gateway serve`, e.g. `bash scripts/run.sh --config my.toml`.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$repo_root"

require_cargo
step "building mcp-gateway (release)"
gateway=$(build_gateway amd64)
step "running mcp-gateway on http://127.0.0.1:8080 (Ctrl-C to stop)"
exec "$gateway" serve "$@"
