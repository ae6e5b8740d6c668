#!/usr/bin/env bash
# The servers the tests start on 127.0.0.1: MariaDB (MLMD's MySQL backend, the production
# metadata path) and Ceph RADOS Gateway (a real S3 for the storage and ledger tests,
# tests/aiact/s3_server.py). Run by hack/test.sh before the tests; the main job
# (hack/setup.sh, aiact run-local) needs neither.
# Idempotent: a server whose commands are on PATH counts as present. As root on Debian it
# installs what is missing; otherwise it fails with one line (the tests must not skip).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
# Debian package -> the commands the tests run from it.
declare -A COMMANDS=(
  [mariadb-server]="mariadbd mariadb-install-db"
  [radosgw]="radosgw"
  [ceph-mon]="ceph-mon monmaptool ceph-authtool ceph"
  [ceph-osd]="ceph-osd"
  [chromium]="chromium"
)
missing=()
for package in mariadb-server radosgw ceph-mon ceph-osd chromium; do
  for command in ${COMMANDS[$package]}; do
    if ! command -v "$command" >/dev/null 2>&1; then
      missing+=("$package")
      break
    fi
  done
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-services: the tests need MariaDB, Ceph RGW and Chromium; missing Debian package(s):" \
      "${missing[*]} (install them as root once: sudo bash hack/setup-services.sh)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "test services ready: MariaDB, Ceph RGW, Chromium (headless)"
