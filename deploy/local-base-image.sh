#!/usr/bin/env bash
# A Debian bookworm base image with Python 3.11, made from Debian's own mirror with mmdebstrap,
# for machines that cannot pull from a registry:  deploy/local-base-image.sh [NAME]
set -euo pipefail
name="${1:-localhost/debian-base:bookworm}"
engine="${ENGINE:-podman}"
if "$engine" image exists "$name" 2>/dev/null; then
  exit 0
fi
work="$(mktemp -d /var/tmp/peppol-base-XXXXXX)"
trap 'rm -rf "$work"' EXIT
mmdebstrap --quiet --variant=apt --include=python3-minimal,python3-venv,ca-certificates bookworm "$work/base.tar"
"$engine" import "$work/base.tar" "$name" >/dev/null
echo "imported $name"
