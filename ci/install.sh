#!/usr/bin/env bash
# Installs the `ferry` command from its release archive (dev/release builds it), checked
# against the SHA-256 beside it, into a cache kept by version: a second run with the same version
# downloads nothing. Used by the GitHub Action; works in any CI or on a laptop.
#
#   FERRY_ARCHIVE=URL-or-path   the archive (ferry-VERSION-x86_64-unknown-linux-gnu.tar.gz); or
#   FERRY_VERSION=X.Y.Z         a release of FERRY_REPOSITORY (OWNER/NAME on GitHub; the
#                               Action passes its own); default: the version of the checkout
#                               this script is in (the Action's own, from its Cargo.toml)
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
    manifest=$(dirname "$0")/../Cargo.toml
    version=$(sed -n 's/^version = "\([0-9][0-9A-Za-z.+-]*\)"$/\1/p' "$manifest" 2>/dev/null | head -1)
    [[ -n $version ]] || die "no version: set ferry_version (FERRY_VERSION)"
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
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fetch() {
  case $1 in
    http://* | https://*) curl --fail --silent --show-error --location --output "$2" "$1" ;;
    file://*) cp "${1#file://}" "$2" ;;
    *) cp "$1" "$2" ;;
  esac
}
# The archive's SHA-256 as its .sha256 gives it (for this very file name), and the cache keyed
# by it: another archive of the same version is not taken for this one.
fetch "$archive.sha256" "$work/$name.sha256" || die "cannot fetch $archive.sha256"
read -r expected listed < "$work/$name.sha256" || true
[[ $expected =~ ^[0-9a-f]{64}$ && ${listed#\*} == "$name" ]] || die "$name.sha256 does not give the SHA-256 of $name"
dir=$cache/$version-${expected:0:16}
if [[ -x $dir/ferry && -f $dir/ferry.sha256 ]] &&
  [[ $(sha256sum "$dir/ferry" | cut -d' ' -f1) == "$(cat "$dir/ferry.sha256")" ]]; then
  echo "install: ferry $version from the cache ($dir)" >&2
else
  fetch "$archive" "$work/$name" || die "cannot fetch $archive"
  [[ $(sha256sum "$work/$name" | cut -d' ' -f1) == "$expected" ]] || die "$name does not match its SHA-256"
  # Only the binary is taken out of the archive, by its exact path.
  tar -C "$work" -xzf "$work/$name" "ferry-$version-$target/ferry"
  mkdir -p "$dir"
  install -m 0755 "$work/ferry-$version-$target/ferry" "$dir/ferry.new"
  sha256sum "$dir/ferry.new" | cut -d' ' -f1 > "$dir/ferry.sha256"
  mv "$dir/ferry.new" "$dir/ferry"
  echo "install: ferry $version installed in $dir" >&2
fi
"$dir/ferry" --version >&2
if [[ -n ${GITHUB_PATH:-} ]]; then
  echo "$dir" >> "$GITHUB_PATH"
fi
echo "$dir"
