#!/usr/bin/env bash
# ensure-tool.sh NAME: makes sure a tool the build or the tests need is on this
# machine, installing it from Debian's packages when it is absent, and fails
# with a clear message when it cannot. Prints the tool's path.
set -euo pipefail

need_root() {
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
    echo "ensure-tool: $1 is missing and cannot be installed without root; install it: $2" >&2
    exit 1
  fi
}

apt_install() {
  local pkgs=("$@")
  local SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "ensure-tool: installing ${pkgs[*]} from Debian's packages" >&2
  # A lock held by another apt run (e.g. a parallel install) is waited for.
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq >&2 || true
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${pkgs[@]}" >&2
}

case "${1:-}" in
  protoc)
    if ! command -v protoc >/dev/null; then
      need_root protoc "apt-get install protobuf-compiler"
      apt_install protobuf-compiler
    fi
    command -v protoc ;;
  chromium)
    if ! command -v chromium >/dev/null; then
      need_root chromium "apt-get install chromium"
      apt_install chromium
    fi
    command -v chromium ;;
  node)
    # Node.js 20+ with npm: the JavaScript client's build and tests.
    node_ok() { command -v node >/dev/null && command -v npm >/dev/null && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ]; }
    if ! command -v node >/dev/null; then
      need_root node "apt-get install nodejs npm (Node.js 20 or later)"
      apt_install nodejs
    fi
    if ! command -v npm >/dev/null; then
      need_root npm "apt-get install npm"
      apt_install npm
    fi
    if ! node_ok; then
      echo "ensure-tool: Node.js 20 or later with npm is required (found node $(node --version 2>/dev/null || echo none)); install it from https://nodejs.org or your distribution" >&2
      exit 1
    fi
    command -v node ;;
  java)
    if ! command -v java >/dev/null; then
      need_root java "apt-get install openjdk-17-jre-headless"
      apt_install openjdk-17-jre-headless
    fi
    command -v java ;;
  gcloud)
    if ! command -v gcloud >/dev/null; then
      echo "ensure-tool: the Google Cloud CLI (gcloud) is missing. Install it with the pubsub and firestore emulators:" >&2
      echo "  https://cloud.google.com/sdk/docs/install, then: gcloud components install beta pubsub-emulator cloud-firestore-emulator" >&2
      echo "  (Debian: apt-get install google-cloud-cli google-cloud-cli-pubsub-emulator google-cloud-cli-firestore-emulator)" >&2
      exit 1
    fi
    sdk="$(gcloud info --format='value(installation.sdk_root)')"
    for c in pubsub-emulator/bin/cloud-pubsub-emulator cloud-firestore-emulator/cloud_firestore_emulator; do
      if [ ! -e "$sdk/platform/$c" ]; then
        echo "ensure-tool: the emulator $sdk/platform/$c is missing; install it:" >&2
        echo "  gcloud components install pubsub-emulator cloud-firestore-emulator  (or the google-cloud-cli-*-emulator Debian packages)" >&2
        exit 1
      fi
    done
    command -v gcloud ;;
  *)
    echo "usage: ensure-tool.sh protoc|chromium|node|java|gcloud" >&2; exit 2 ;;
esac
