#!/usr/bin/env bash
# Installs the Debian packages losad builds against, only when one is missing.
# Quiet and idempotent: prints nothing when everything is present.
set -euo pipefail

packages=(libopenblas-dev libsystemd-dev libsqlite3-dev pkg-config)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "losad setup: missing ${missing[*]}, and this system has no apt-get; install them with your package manager." >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "losad setup: need root to install ${missing[*]}." >&2; exit 1; }
    sudo="sudo"
fi
echo "losad setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists; an old list may name removed versions.
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
