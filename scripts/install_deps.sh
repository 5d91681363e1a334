#!/usr/bin/env bash
# Installs the Debian packages coordiff needs that are missing (no-op when all are present).
# Usage: scripts/install_deps.sh [test|demo|bench|golden]...
set -euo pipefail
pkgs=(cmake ninja-build g++ make libeigen3-dev xtensor-dev xtl-dev libxsimd-dev zlib1g-dev nlohmann-json3-dev doctest-dev)
for what in "$@"; do
  case "$what" in
    test|demo) ;;
    bench) pkgs+=(libbenchmark-dev python3-torch python3-numpy) ;;
    golden) pkgs+=(python3-torch python3-numpy) ;;
    *) echo "install_deps.sh: unknown set '$what' (expected test, demo, bench or golden)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "coordiff: installing missing Debian packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
