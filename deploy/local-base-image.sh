#!/usr/bin/env bash
# A Debian bookworm base image with Python 3.11, made from Debian's own mirror with mmdebstrap,
# for machines that cannot pull from a registry:  deploy/local-base-image.sh [NAME]
# An image already under NAME is reused only if it has what deploy/Containerfile needs
# (`python3 -m venv`); otherwise it is made again under that name.
set -euo pipefail
name="${1:-localhost/debian-base:bookworm}"
engine="${ENGINE:-podman}"
has_venv() {
  "$engine" run --rm --network=none --entrypoint python3 "$name" -m venv --help >/dev/null 2>&1
}
if "$engine" image exists "$name" 2>/dev/null; then
  if has_venv; then
    exit 0
  fi
  echo "$name has no 'python3 -m venv'; making it again" >&2
fi
work="$(mktemp -d /var/tmp/peppol-base-XXXXXX)"
trap 'rm -rf "$work"' EXIT
mmdebstrap --quiet --variant=apt --include=python3-minimal,python3-venv,ca-certificates bookworm "$work/base.tar"
"$engine" import "$work/base.tar" "$name" >/dev/null
if ! has_venv; then
  echo "$name was made but still has no 'python3 -m venv'" >&2
  exit 1
fi
echo "imported $name"
