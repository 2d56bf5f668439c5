#!/usr/bin/env bash
# Provides daprd, placement and scheduler of the pinned Dapr version in dapr-runtime/bin.
#
# Order of preference:
#   1. $THREADHOST_DAPR_BIN (a folder holding all three binaries of the right version)
#   2. ~/.dapr/bin (what `dapr init --slim` leaves behind)
#   3. the binaries on PATH
#   4. a build from the official github.com/dapr/dapr module pinned in go.mod,
#      through the Go module proxy (CGO off, -tags stablecomponents, version stamped).
# Reused binaries are linked into bin/, so everything else looks in one place.
# Prints the bin folder on its last line.
#
# `build.sh sentry` also provides Dapr's Sentry (the CA behind mTLS), which the
# rehearsals of the deployment files run (tests/rehearsal.py); `dapr init --slim`
# does not ship it, so it is built from the same module when missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="$here/bin"
version="$(awk '$1 == "require" && $2 == "github.com/dapr/dapr" { sub(/^v/, "", $3); print $3 }' "$here/go.mod")"
tools=(daprd placement scheduler)

say() { printf '[dapr-runtime] %s\n' "$*" >&2; }

ticking() { # label command... : runs the command, saying every 15 s that it still runs
  local label="$1" started=$SECONDS pid status
  shift
  "$@" & pid=$!
  while ! wait_for "$pid" 15; do say "$label ... $((SECONDS - started)) s"; done
  wait "$pid"; status=$?
  return "$status"
}

wait_for() { # pid seconds : true once the process has exited, false after the delay
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

has_version() { # folder -> true when all three tools are there and daprd reports $version
  local dir="$1" t
  for t in "${tools[@]}"; do [ -x "$dir/$t" ] || return 1; done
  # placement and scheduler have no --version flag; they ship beside their daprd.
  [ "$("$dir/daprd" --version 2>/dev/null | head -n 1)" = "$version" ]
}

link_from() {
  local dir="$1" t
  mkdir -p "$bin"
  for t in "${tools[@]}"; do ln -sfn "$dir/$t" "$bin/$t"; done
}

build_extra() { # tools... : builds each one missing from bin/, beside the others
  local t ldflags
  for t in "$@"; do
    [ -x "$bin/$t" ] && continue
    command -v go >/dev/null 2>&1 || { say "building $t needs Go >= 1.26"; exit 1; }
    say "building Dapr $version $t from the official module"
    ldflags="-s -w -X github.com/dapr/dapr/pkg/buildinfo.version=$version -X github.com/dapr/kit/logger.DaprVersion=$version"
    (cd "$here" && ticking "compiling $t" env CGO_ENABLED=0 go build -trimpath \
      -tags stablecomponents -ldflags "$ldflags" -o "$bin/$t.tmp.$$" "github.com/dapr/dapr/cmd/$t")
    mv "$bin/$t.tmp.$$" "$bin/$t"
  done
}

if has_version "$bin"; then
  build_extra "$@"
  echo "$bin"; exit 0
fi

candidates=()
[ -n "${THREADHOST_DAPR_BIN:-}" ] && candidates+=("$THREADHOST_DAPR_BIN")
candidates+=("$HOME/.dapr/bin")
if p="$(command -v daprd 2>/dev/null)"; then candidates+=("$(dirname "$p")"); fi
for dir in "${candidates[@]}"; do
  if has_version "$dir"; then
    say "reusing Dapr $version binaries from $dir"
    link_from "$dir"; build_extra "$@"; echo "$bin"; exit 0
  fi
done

if ! command -v go >/dev/null 2>&1; then
  say "Go is not installed, and no Dapr $version binaries were found."
  say "Either install Go >= 1.26 (the build needs the Go module proxy), or on a connected"
  say "machine run 'dapr init --slim --runtime-version $version' and set THREADHOST_DAPR_BIN=~/.dapr/bin."
  exit 1
fi

packages=()
for t in "${tools[@]}"; do packages+=("github.com/dapr/dapr/cmd/$t"); done

say "building Dapr $version (daprd, placement, scheduler) from the official module"
say "the first build on a machine downloads ~500 modules and compiles for several minutes"
cd "$here"
start=$SECONDS
if ! ticking "downloading modules" go list -deps -tags stablecomponents "${packages[@]}" >/dev/null; then
  say "could not download the Dapr module graph: is the Go module proxy reachable (GOPROXY=$(go env GOPROXY))?"
  say "Without it, run 'dapr init --slim --runtime-version $version' on a connected machine and set THREADHOST_DAPR_BIN."
  exit 1
fi

tmp="$bin.tmp.$$"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"
ldflags="-s -w -X github.com/dapr/dapr/pkg/buildinfo.version=$version -X github.com/dapr/kit/logger.DaprVersion=$version"
for t in "${tools[@]}"; do
  ticking "compiling $t" env CGO_ENABLED=0 go build -trimpath -tags stablecomponents \
    -ldflags "$ldflags" -o "$tmp/$t" "github.com/dapr/dapr/cmd/$t"
done
mkdir -p "$bin"
for t in "${tools[@]}"; do rm -f "$bin/$t"; mv "$tmp/$t" "$bin/$t"; done
has_version "$bin" || { say "the built daprd does not report version $version"; exit 1; }
say "built in $((SECONDS - start)) s: $(du -ch "$bin"/* | tail -n 1 | cut -f1) in $bin"
build_extra "$@"
echo "$bin"
