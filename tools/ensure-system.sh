#!/usr/bin/env bash
# Installs the system programs Tickwire needs when they are missing, through apt-get.
# Usage: tools/ensure-system.sh redis-server [chromium] [nginx] [prometheus] [dockerd] [debootstrap]
# dockerd and debootstrap are for tests/deploy/ (a container engine and a local base image).
set -euo pipefail

declare -A package=([redis-server]=redis-server [chromium]=chromium [nginx]=nginx-light [dockerd]=docker.io
                   [debootstrap]=debootstrap)
missing=()
for cmd in "$@"; do
  if ! command -v "$cmd" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$cmd" ]; then
    missing+=("${package[$cmd]:-$cmd}")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "tickwire: missing ${missing[*]} and apt-get is not available; install them with your package manager." >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "tickwire: missing ${missing[*]}; run as root or install them: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
echo "tickwire: installing ${missing[*]} with apt-get"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
