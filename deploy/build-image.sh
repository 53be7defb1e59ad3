#!/usr/bin/env bash
# Builds the image with BuildKit (the Dockerfile's CA secret needs it):
#
#   deploy/build-image.sh [TAG]                          # default microcrop-assets:latest
#   MICROCROP_CA_BUNDLE=/path/ca.crt deploy/build-image.sh   # a private CA in front of the package index
#
# The CA bundle reaches the build as the BuildKit secret `ca_bundle`, mounted only while dependencies
# install; no layer of the image keeps it. Docker 23+ builds with BuildKit through its buildx plugin;
# Debian bookworm's docker.io (20.10) has no buildx package but builds with BuildKit itself when
# DOCKER_BUILDKIT=1, so its client (/usr/bin/docker) is used when `docker buildx` is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-microcrop-assets:latest}"

docker_cli=docker
if ! docker buildx version >/dev/null 2>&1; then
  if [ -x /usr/bin/docker ]; then
    docker_cli=/usr/bin/docker
  else
    echo "deploy/build-image.sh: BuildKit is needed: install docker's buildx plugin (or Debian's docker.io)" >&2
    exit 2
  fi
fi
secret=()
if [ -n "${MICROCROP_CA_BUNDLE:-}" ]; then
  [ -s "$MICROCROP_CA_BUNDLE" ] || { echo "deploy/build-image.sh: MICROCROP_CA_BUNDLE=$MICROCROP_CA_BUNDLE is not a file" >&2; exit 2; }
  secret=(--secret "id=ca_bundle,src=$MICROCROP_CA_BUNDLE")
fi
log="$(mktemp /tmp/microcrop-image-build.XXXXXX.log)"
echo "building $tag (log: $log)"
start=$(date +%s)
if ! DOCKER_BUILDKIT=1 "$docker_cli" build --network host --progress plain "${secret[@]}" -t "$tag" . >"$log" 2>&1; then
  tail -30 "$log" >&2
  echo "deploy/build-image.sh: the build failed; full log: $log" >&2
  exit 1
fi
size=$(docker image inspect "$tag" --format '{{.Size}}')
echo "built $tag in $(( $(date +%s) - start )) s: $(( size / 1000000 )) MB"
