#!/usr/bin/env bash
# buildah with podfleet's own image store, so the image builds and tests never touch another
# user's containers/storage and clean up by name. Every image script and test calls buildah
# through this wrapper: `bash builder/image/buildah.sh images`, `... run --network none IMAGE CMD`.
#   PODFLEET_BUILDAH_ROOT     store (default /var/lib/podfleet-image/storage-DRIVER)
#   PODFLEET_BUILDAH_RUNROOT  run state (default /run/podfleet-image)
#   PODFLEET_BUILDAH_DRIVER   storage driver: overlay (the default where the kernel has overlayfs
#                             and /var/lib is not itself on overlayfs: a layer holds only what
#                             changed) or vfs (works everywhere, but every layer is a full copy
#                             of the file system: about 10x the disk and a copy per step)
# Root only (CI and the dev machines run as root); isolation is chroot (no runc or crun here).
set -euo pipefail

driver=${PODFLEET_BUILDAH_DRIVER:-}
if [ -z "$driver" ]; then
  driver=vfs
  if grep -qw overlay /proc/filesystems && [ "$(stat -f -c %T /var/lib)" != overlayfs ]; then
    driver=overlay
  fi
fi
export BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}
exec buildah \
  --root "${PODFLEET_BUILDAH_ROOT:-/var/lib/podfleet-image/storage-$driver}" \
  --runroot "${PODFLEET_BUILDAH_RUNROOT:-/run/podfleet-image-$driver}" \
  --storage-driver "$driver" \
  "$@"
