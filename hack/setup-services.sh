#!/usr/bin/env bash
# System packages the tests start as real servers on 127.0.0.1 (Debian packages; needs root).
# Idempotent: installs only what is missing.
set -euo pipefail
PACKAGES=(
  mariadb-server   # MLMD's MySQL backend, the production metadata path
  # issue 3: a real S3 server (Ceph RADOS Gateway) for the storage tests (tests/aiact/s3_server.py)
  radosgw
  ceph-mon
  ceph-osd
)
missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-services: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "test services ready: ${PACKAGES[*]}"
