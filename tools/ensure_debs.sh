#!/usr/bin/env bash
# Installs the Debian packages named as arguments that are missing (as root), or names the
# apt-get command to run (otherwise) and fails. Used by the Makefile's dependency stamps.
set -u
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
done
# npm fetches the gazetteer; a machine may carry its own Node.js build, so look for the command.
command -v npm >/dev/null || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages; run: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "installing missing Debian packages: ${missing[*]}"
apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
