#!/usr/bin/env bash
# The container, tried for real: builds the Dockerfile with podman from a
# clean clone of this checkout's HEAD, runs the image and checks it. These
# machines have no Docker engine and no registry images, so the base images
# come from debootstrap (Debian bookworm), imported under the names the
# Dockerfile uses: debian:bookworm-slim, and rust:1-bookworm made of the
# same rootfs with a C toolchain and the host's Rust toolchain copied in.
#
# Checks: the image builds; the server runs as a non-root user; /healthz
# answers; SCIMD_BOOTSTRAP_TOKEN provisions the token it names; a SCIM
# write survives a container restart on the SQLite volume; SIGTERM stops it
# cleanly (exit 0, within the stop timeout).
#
# Slow (debootstrap, and a release build inside the container): not part of
# .ci/run. Needs root (debootstrap, podman). Usage: tests/container/run.sh
# Environment: SCIMD_CONTAINER_DIR (work folder, default target/container;
# its rootfs folders are reused when present).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="${SCIMD_CONTAINER_DIR:-$root/target/container}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
mkdir -p "$work"

for tool in podman debootstrap runc curl; do
  command -v "$tool" >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman debootstrap runc curl >/dev/null
    break
  }
done

# What this cgroup setup and these limits need: Debian's runc (crun fails
# here), ulimits below the machine's hard limits, no registry pulls.
nofile="$(( $(ulimit -Hn) < 16384 ? $(ulimit -Hn) : 16384 ))"
nproc="$(( $(ulimit -Hu) < 8192 ? $(ulimit -Hu) : 8192 ))"
podman=(podman --runtime runc)
limits=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")

echo "== base images from debootstrap"
if [ ! -f "$work/rootfs-slim/.done" ]; then
  rm -rf "$work/rootfs-slim"
  debootstrap --variant=minbase bookworm "$work/rootfs-slim" "$mirror" >"$work/debootstrap-slim.log" 2>&1
  touch "$work/rootfs-slim/.done"
fi
tar -C "$work/rootfs-slim" --exclude=./.done -c . | "${podman[@]}" import - docker.io/library/debian:bookworm-slim >/dev/null

if [ ! -f "$work/rootfs-rust/.done" ]; then
  rm -rf "$work/rootfs-rust"
  debootstrap --variant=minbase --include=gcc,libc6-dev,ca-certificates,pkg-config \
    bookworm "$work/rootfs-rust" "$mirror" >"$work/debootstrap-rust.log" 2>&1
  sysroot="$(rustc --print sysroot)"
  mkdir -p "$work/rootfs-rust/usr/local/rust"
  # The toolchain without its documentation.
  cp -a "$sysroot/bin" "$sysroot/lib" "$work/rootfs-rust/usr/local/rust/"
  touch "$work/rootfs-rust/.done"
fi
tar -C "$work/rootfs-rust" --exclude=./.done -c . | "${podman[@]}" import \
  --change 'ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV CARGO_HOME=/usr/local/cargo' \
  --change 'ENV CARGO_HTTP_CAINFO=/etc/ssl/host-ca.crt' \
  - docker.io/library/rust:1-bookworm >/dev/null

echo "== building the Dockerfile from a clean clone of $(git -C "$root" rev-parse --short HEAD)"
rm -rf "$work/src"
git clone -q "$root" "$work/src"
# The host's CA bundle, beside the image's own (a RUN that installs
# ca-certificates must be free to replace that), so that cargo in the
# stand-in rust image (CARGO_HTTP_CAINFO) reaches the crate registry through
# whatever this network puts in between.
"${podman[@]}" build --pull=never --network=host "${limits[@]}" \
  -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/host-ca.crt:ro \
  -t localhost/scimd:check "$work/src" >"$work/build.log" 2>&1 \
  || { tail -40 "$work/build.log"; echo "FAIL: the image does not build" >&2; exit 1; }
echo "ok: the image builds"

name="scimd-check-$$"
volume="scimd-check-$$"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
token="Pcheck:$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cleanup() {
  "${podman[@]}" rm -f "$name" >/dev/null 2>&1 || true
  "${podman[@]}" volume rm -f "$volume" >/dev/null 2>&1 || true
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; "${podman[@]}" logs "$name" 2>&1 | tail -20 >&2; exit 1; }

"${podman[@]}" volume create "$volume" >/dev/null
# Host networking keeps the listener on loopback; SCIMD_BIND moves it off 8080.
"${podman[@]}" run -d --name "$name" --network=host "${limits[@]}" \
  -v "$volume:/var/lib/scimd" \
  -e "SCIMD_BIND=127.0.0.1:$port" -e "SCIMD_BOOTSTRAP_TOKEN=$token" \
  localhost/scimd:check >/dev/null

healthy() {
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}
healthy || fail "/healthz did not answer within 20 s"
echo "ok: /healthz answers"

uid="$("${podman[@]}" top "$name" huser user | awk 'NR==2 {print $2}')"
[ -n "$uid" ] && [ "$uid" != root ] && [ "$uid" != 0 ] || fail "the server runs as '$uid'"
echo "ok: the server runs as user '$uid', not root"

api="http://127.0.0.1:$port/scim/v2"
status="$(curl -s -o /dev/null -w '%{http_code}' "$api/Users")"
[ "$status" = 401 ] || fail "GET /Users without a token answered $status, not 401"
created="$(curl -fsS -H "Authorization: Bearer $token" -H 'Content-Type: application/scim+json' \
  -d '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"survivor@example.com"}' \
  "$api/Users")" || fail "POST /Users with SCIMD_BOOTSTRAP_TOKEN failed"
id="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$created")"
echo "ok: SCIMD_BOOTSTRAP_TOKEN works (created user $id)"

stop_cleanly() {
  local started; started="$(date +%s)"
  "${podman[@]}" stop -t 10 "$name" >/dev/null
  local took=$(( $(date +%s) - started ))
  local code; code="$("${podman[@]}" inspect -f '{{.State.ExitCode}}' "$name")"
  [ "$code" = 0 ] || fail "exit code $code after SIGTERM"
  [ "$took" -lt 10 ] || fail "took $took s to stop (SIGKILL at 10 s)"
  "${podman[@]}" logs "$name" 2>&1 | grep -q 'scimd stopped' || fail "no 'scimd stopped' in the log"
  echo "ok: SIGTERM stops it cleanly (exit 0 after ${took} s)"
}
stop_cleanly

"${podman[@]}" start "$name" >/dev/null
healthy || fail "/healthz did not answer after the restart"
status="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$api/Users/$id")"
[ "$status" = 200 ] || fail "GET /Users/$id after the restart answered $status"
echo "ok: the write survived a restart on the SQLite volume"
stop_cleanly

echo "container checks passed"
