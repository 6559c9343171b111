#!/usr/bin/env bash
# buildah with podfleet's own image store, so the image builds and tests never touch another
# user's containers/storage and clean up by name. Every image script and test calls buildah
# through this wrapper: `bash builder/image/buildah.sh images`, `... run --network none IMAGE CMD`.
#   PODFLEET_BUILDAH_ROOT     store (default /var/lib/podfleet-image/storage-DRIVER)
#   PODFLEET_BUILDAH_RUNROOT  run state (default /run/podfleet-image)
#   PODFLEET_BUILDAH_DRIVER   storage driver: vfs (default; works everywhere, copies each layer)
#                             or overlay (needs kernel overlayfs; shares unchanged files)
# Root only (CI and the dev machines run as root); isolation is chroot (no runc or crun here).
set -euo pipefail

driver=${PODFLEET_BUILDAH_DRIVER:-vfs}
export BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}
exec buildah \
  --root "${PODFLEET_BUILDAH_ROOT:-/var/lib/podfleet-image/storage-$driver}" \
  --runroot "${PODFLEET_BUILDAH_RUNROOT:-/run/podfleet-image-$driver}" \
  --storage-driver "$driver" \
  "$@"
