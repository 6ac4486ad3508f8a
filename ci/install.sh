#!/usr/bin/env bash
# Installs the `ferry` command from its release archive (dev/release builds it), checked
# against the SHA-256 beside it, into a cache kept by version: a second run with the same version
# downloads nothing. Used by the GitHub Action; works in any CI or on a laptop.
#
#   FERRY_ARCHIVE=URL-or-path   the archive (ferry-VERSION-x86_64-unknown-linux-gnu.tar.gz); or
#   FERRY_VERSION=X.Y.Z         a release of FERRY_REPOSITORY (OWNER/NAME on GitHub; the
#                               Action passes its own, and its ref vX.Y.Z as the default version)
#   FERRY_CACHE=DIR             the cache (default $RUNNER_TOOL_CACHE/ferry, else
#                               ~/.cache/ferry)
# The directory holding `ferry` is added to $GITHUB_PATH when set, and printed.
set -euo pipefail
die() {
  echo "install: $*" >&2
  exit 1
}
target=x86_64-unknown-linux-gnu
[[ $(uname -s)-$(uname -m) == Linux-x86_64 ]] || die "release archives exist for $target only"
archive=${FERRY_ARCHIVE:-}
version=${FERRY_VERSION:-}
if [[ -z $archive ]]; then
  if [[ -z $version ]]; then
    ref=${FERRY_ACTION_REF:-}
    [[ $ref =~ ^v?([0-9]+\.[0-9]+\.[0-9]+)$ ]] ||
      die "no version: set ferry_version (the action's ref ${ref:-(none)} is not a release tag)"
    version=${BASH_REMATCH[1]}
  fi
  repository=${FERRY_REPOSITORY:-${FERRY_ACTION_REPOSITORY:-}}
  [[ -n $repository ]] || die "FERRY_REPOSITORY (OWNER/NAME on GitHub) or FERRY_ARCHIVE is required"
  archive=https://github.com/$repository/releases/download/v$version/ferry-$version-$target.tar.gz
fi
name=$(basename "$archive")
[[ $name =~ ^ferry-([0-9A-Za-z.+-]+)-$target\.tar\.gz$ ]] || die "$name is not a ferry release archive name"
version=${BASH_REMATCH[1]}
cache=${FERRY_CACHE:-${RUNNER_TOOL_CACHE:+$RUNNER_TOOL_CACHE/ferry}}
cache=${cache:-$HOME/.cache/ferry}
dir=$cache/$version
if [[ -x $dir/ferry ]] && "$dir/ferry" --version | grep -q "^ferry $version "; then
  echo "install: ferry $version from the cache ($dir)" >&2
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  fetch() {
    case $1 in
      http://* | https://*) curl --fail --silent --show-error --location --output "$2" "$1" ;;
      file://*) cp "${1#file://}" "$2" ;;
      *) cp "$1" "$2" ;;
    esac
  }
  fetch "$archive" "$work/$name" || die "cannot fetch $archive"
  fetch "$archive.sha256" "$work/$name.sha256" || die "cannot fetch $archive.sha256"
  (cd "$work" && sha256sum --check --status "$name.sha256") || die "$name does not match its SHA-256"
  tar -C "$work" -xzf "$work/$name"
  mkdir -p "$dir"
  install -m 0755 "$work/ferry-$version-$target/ferry" "$dir/ferry.new"
  mv "$dir/ferry.new" "$dir/ferry"
  echo "install: ferry $version installed in $dir" >&2
fi
"$dir/ferry" --version >&2
if [[ -n ${GITHUB_PATH:-} ]]; then
  echo "$dir" >> "$GITHUB_PATH"
fi
echo "$dir"
