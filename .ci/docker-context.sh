#!/usr/bin/env bash
# Checks that the Dockerfile's builder stage can build scimd from exactly the
# files it copies, without a container engine: it reads the stage's COPY lines
# from the Dockerfile (no second list kept by hand), lays those files out in a
# temporary folder as the stage would, and runs `cargo metadata --locked` and
# `cargo check --locked` on the builder's binary there. A manifest naming a
# file the image does not get (a bench, a migration the sqlx macro embeds)
# fails here as it would in `docker build`.
#
# Usage: .ci/docker-context.sh [Dockerfile]   (default: the repository's)
# Reuses the repository's target/ (CARGO_TARGET_DIR) so only scimd itself is
# checked again.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dockerfile="${1:-$root/Dockerfile}"
ctx="$(cd "$(dirname "$dockerfile")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# The builder stage: from its FROM line to the next FROM. Continuation lines
# are joined first.
stage="$(sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' "$dockerfile" |
  awk 'tolower($1)=="from" { n++ } n==1')"
workdir="$(awk 'tolower($1)=="workdir" { w=$2 } END { print w }' <<<"$stage")"
[ -n "$workdir" ] || { echo "docker-context: no WORKDIR in the builder stage of $dockerfile" >&2; exit 1; }
build="$(awk 'tolower($1)=="run" && /cargo build/ { $1=""; print }' <<<"$stage")"
[ -n "$build" ] || { echo "docker-context: no 'RUN cargo build' in the builder stage of $dockerfile" >&2; exit 1; }

# Docker's COPY: the last argument is the destination, relative to WORKDIR;
# a directory source copies its contents; several sources or a destination
# ending in '/' mean "into this folder". Flags (--chown, --link) are skipped;
# a COPY --from takes files from another image, not the build context.
while read -r -a words; do
  [ "${#words[@]}" -gt 0 ] || continue
  args=()
  for w in "${words[@]:1}"; do
    case "$w" in
      --from=*) continue 2 ;;
      --*) ;;
      *) args+=("$w") ;;
    esac
  done
  dest="${args[-1]}"
  unset 'args[-1]'
  case "$dest" in /*) ;; *) dest="$workdir/$dest" ;; esac
  into=0
  case "$dest" in */) into=1 ;; esac
  [ "${#args[@]}" -gt 1 ] && into=1
  for src in "${args[@]}"; do
    [ -e "$ctx/$src" ] || { echo "docker-context: COPY source '$src' is not in the build context" >&2; exit 1; }
    if [ -d "$ctx/$src" ]; then
      mkdir -p "$tmp$dest"
      cp -a "$ctx/$src/." "$tmp$dest/"
    elif [ "$into" = 1 ]; then
      mkdir -p "$tmp$dest"
      cp -a "$ctx/$src" "$tmp$dest/"
    else
      mkdir -p "$(dirname "$tmp$dest")"
      cp -a "$ctx/$src" "$tmp$dest"
    fi
  done
done < <(awk 'tolower($1)=="copy"' <<<"$stage")

# The builder's binary selection (--bin NAME), if it names one.
bin="$(grep -o -- '--bin[ =][A-Za-z0-9_-]*' <<<"$build" | head -n 1 | sed 's/--bin[ =]//')"
echo "docker-context: builder stage copies: $(cd "$tmp$workdir" && find . -maxdepth 1 -mindepth 1 | sed 's|^\./||' | sort | tr '\n' ' ')"
cd "$tmp$workdir"
cargo metadata --locked --format-version 1 >/dev/null
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}" cargo check --locked --quiet ${bin:+--bin "$bin"}
echo "docker-context: ok (cargo metadata and cargo check --locked${bin:+ --bin $bin} in the builder's files)"
