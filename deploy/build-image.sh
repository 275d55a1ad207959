#!/usr/bin/env bash
# Build the gateway image: wheels are built here on the host and installed offline in the image
# (no network or registry needed during the build beyond the base image).
#   deploy/build-image.sh [BASE_IMAGE] [IMAGE] [ENGINE]
set -euo pipefail
base="${1:-docker.io/library/python:3.11-slim-bookworm}"
image="${2:-localhost/peppol-gateway:dev}"
engine="${3:-podman}"
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
# The official validation rules go into the wheel (gateway/duties/artefacts), so into the image.
bash "$root/.ci/validation-rules"
"$python" -m pip wheel -q -w "$context/wheels" "$root[validation]"
format=()
[ "$(basename "$engine")" = podman ] && format=(--format docker)  # keeps the HEALTHCHECK
"$engine" build "${format[@]}" -f "$root/deploy/Containerfile" --build-arg "BASE_IMAGE=$base" -t "$image" "$context"
echo "built $image on $base"
