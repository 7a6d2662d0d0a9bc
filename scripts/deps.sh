#!/usr/bin/env bash
# Installs the Debian packages the project needs to build, run and test,
# when one of them is missing.  Uses sudo when not root.
set -euo pipefail

pkgs=(
	build-essential pkg-config clang
	libevent-dev libgdbm-dev libjansson-dev libbsd-dev zlib1g-dev
	libcmocka-dev
	python3-pytest mosquitto-clients mosquitto python3-paho-mqtt mandoc
)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
