#!/usr/bin/env bash
# Builds the Dockerfile's base image, python:3.11-slim-bookworm, from Debian's packages alone, for a
# host that reaches a Debian mirror but no image registry (an air-gapped data centre, this project's CI).
# The result is tagged with the official name, so the Dockerfile stays the normal one:
#
#   sudo deploy/base-image.sh                      # then: docker build ... (docs/deployment.md)
#   DEBIAN_MIRROR=http://mirror.internal/debian sudo deploy/base-image.sh
#
# What it holds: Debian bookworm (minbase) with its python3 (3.11), pip and venv, made to look like the
# official image where the Dockerfile relies on it: `python`, `python3` and `pip` on PATH, and pip free
# to install into the system Python (as in the official image, which has no EXTERNALLY-MANAGED marker).
# Needs root, debootstrap and a running Docker daemon.
set -euo pipefail

tag="${BASE_IMAGE_TAG:-python:3.11-slim-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
rootfs="$(mktemp -d /tmp/microcrop-base.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT

if [ "$(id -u)" -ne 0 ]; then
  echo "deploy/base-image.sh: run it as root (debootstrap and docker import need it)" >&2
  exit 2
fi
for tool in debootstrap docker; do
  command -v "$tool" >/dev/null || { echo "deploy/base-image.sh: $tool is not installed (apt-get install debootstrap docker.io)" >&2; exit 2; }
done

echo "[1/3] debootstrap bookworm (minbase) from $mirror"
debootstrap --variant=minbase \
  --include=python3,python3-pip,python3-venv,ca-certificates,passwd \
  bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
    echo "deploy/base-image.sh: debootstrap failed; its log: $rootfs.log" >&2; exit 1; }

echo "[2/3] trimming (apt lists and caches, docs, man pages, bytecode)"
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/usr/share/doc/* \
  "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/*
find "$rootfs/usr/lib/python3" "$rootfs/usr/lib/python3.11" -name __pycache__ -prune -exec rm -rf {} +
rm -f "$rootfs"/usr/lib/python3.11/EXTERNALLY-MANAGED
ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/pip"

echo "[3/3] docker import as $tag"
tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  - "$tag" >/dev/null
rm -f "$rootfs.log"
docker image ls "$tag" --format 'built {{.Repository}}:{{.Tag}} ({{.Size}})'
