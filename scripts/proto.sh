#!/usr/bin/env bash
# Regenerates proto/courier/v1/*.pb.go with pinned plugin versions. protoc
# itself comes from Debian's protobuf-compiler (installed when absent).
set -euo pipefail
cd "$(dirname "$0")/.."
PROTOC_GEN_GO=google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC=google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
BIN="$PWD/.tools/bin"
mkdir -p "$BIN"
scripts/ensure-tool.sh protoc >/dev/null
[ -x "$BIN/protoc-gen-go" ] || GOBIN="$BIN" go install "$PROTOC_GEN_GO"
[ -x "$BIN/protoc-gen-go-grpc" ] || GOBIN="$BIN" go install "$PROTOC_GEN_GO_GRPC"
cd proto
PATH="$BIN:$PATH" protoc -I . \
  --go_out=. --go_opt=paths=source_relative \
  --go-grpc_out=. --go-grpc_opt=paths=source_relative \
  courier/v1/*.proto
