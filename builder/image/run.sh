#!/usr/bin/env bash
# Runs one command in a fresh container of an image (podfleet's buildah store), then removes the
# container: what `docker run --rm` does, for machines without a Docker engine.
#   bash builder/image/run.sh [OPTIONS] IMAGE [-- CMD ARGS...]     (no CMD: the image's CMD)
# OPTIONS (`--name=value` form only):
#   --network=none   no network: a new network namespace holding only a loopback interface (up),
#                    as Docker's --network none. buildah's chroot isolation cannot do this itself
#                    (its `--network none` still shares the host's interfaces).
#   --network=host   the host's network (default), e.g. to reach an emulator on 127.0.0.1
#   --volume=H:C[:ro], --workingdir=DIR, --env=NAME=VALUE   passed to `buildah run`
# Environment: every RUNPOD_* variable passes in (the emulator hands workers their endpoint
# that way), and so do the names listed in PODFLEET_IMAGE_ENV (space-separated), if set.
# Signals: SIGTERM/SIGINT go to the command itself (RunPod stops a worker with SIGTERM and the
# SDK drains its job); buildah's chroot helpers would otherwise die first and SIGKILL it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
buildah=(bash "$here/buildah.sh")
network=host
options=()
while [ "$#" -gt 0 ] && [[ $1 == --* ]]; do
  case "$1" in
    --network=none) network=none ;;
    --network=host) network=host ;;
    --network=*) echo "run.sh: --network is none or host" >&2; exit 2 ;;
    --volume=* | --workingdir=* | --env=*) options+=("$1") ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$#" -lt 1 ]; then echo "usage: run.sh [OPTIONS] IMAGE [-- CMD ARGS...]" >&2; exit 2; fi
image=$1
shift
if [ "${1:-}" = -- ]; then shift; fi

if [ "$network" = none ] && [ -z "${PODFLEET_RUN_NETNS:-}" ]; then
  # Re-enter in an empty network namespace; bring its loopback up (Chromium, local sockets).
  exec env PODFLEET_RUN_NETNS=1 unshare --net -- bash "${BASH_SOURCE[0]}" "--network=none" \
    "${options[@]}" "$image" -- "$@"
fi
if [ -n "${PODFLEET_RUN_NETNS:-}" ]; then
  python3 - <<'UP'
import fcntl, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH", b"lo", 0)))[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 1))  # SIOCSIFFLAGS lo IFF_UP
UP
fi

if [ "$#" -eq 0 ]; then
  mapfile -t cmd < <("${buildah[@]}" inspect --type image \
    --format '{{range .OCIv1.Config.Cmd}}{{println .}}{{end}}' "$image" | sed '/^$/d')
  set -- "${cmd[@]}"
fi
for name in $(compgen -e); do
  case "$name" in
    RUNPOD_* | PODFLEET_RUN_NETNS) ;;
    *) continue ;;
  esac
  if [ "$name" != PODFLEET_RUN_NETNS ]; then options+=("--env=$name=${!name}"); fi
done
for name in ${PODFLEET_IMAGE_ENV:-}; do
  if [ -n "${!name+x}" ]; then options+=("--env=$name=${!name}"); fi
done

ctl=$(mktemp -d)
ctr=$("${buildah[@]}" from --pull=never "$image")
child=""
# shellcheck disable=SC2317  # both run from traps
cleanup() {
  "${buildah[@]}" rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$ctl"
}
# shellcheck disable=SC2317
forward() {
  # The command's own pid (it wrote it on start; chroot isolation shares the host's pid space).
  if [ -s "$ctl/pid" ]; then kill -TERM "$(cat "$ctl/pid")" 2>/dev/null || true
  elif [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap forward TERM INT
# The buildah process runs in a session of its own, so a signal to our process group (how the
# emulator and RunPod stop a worker) reaches only us, and we pass it on to the command.
setsid "${buildah[@]}" run --network host "${options[@]}" --volume="$ctl:/run/podfleet-run" \
  "$ctr" -- sh -c 'echo $$ > /run/podfleet-run/pid; exec "$@"' sh "$@" &
child=$!
status=0
while true; do
  wait "$child" && status=0 || status=$?
  if ! kill -0 "$child" 2>/dev/null; then break; fi  # a trapped signal ended the wait, not the child
done
exit "$status"
