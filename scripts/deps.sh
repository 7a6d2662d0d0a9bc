#!/usr/bin/env bash
# Installs the Debian packages the project needs, when one of them is
# missing.  Uses sudo when not root.
#   scripts/deps.sh          to build and test (make check)
#   scripts/deps.sh build    to build and run only (make run; the Dockerfile's
#                            build stage)
#   scripts/deps.sh bench    the brokers make bench compares ours with (never
#                            installed by make check)
set -euo pipefail

build=(
	build-essential pkg-config
	libevent-dev libssl-dev libgdbm-dev libjansson-dev libbsd-dev libdeflate-dev libsystemd-dev
	libcmocka-dev
)
test=(
	clang python3-pytest python3-pytest-xdist mosquitto-clients mosquitto python3-paho-mqtt mandoc openssl node-mqtt
	iproute2 python3-cryptography
)
bench=(
	mosquitto nats-server
)

case "${1:-all}" in
build)	pkgs=("${build[@]}") ;;
all)	pkgs=("${build[@]}" "${test[@]}") ;;
bench)	pkgs=("${bench[@]}") ;;
*)	echo "usage: scripts/deps.sh [build | bench]" >&2; exit 2 ;;
esac

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

# The tests need mosquitto_passwd, and make bench the mosquitto server, both
# from the package mosquitto, whose service then starts on port 1883: the
# port this broker's make run listens on.  The service this script brought
# in is stopped and disabled (systemctl enable mosquitto brings it back).
if [[ " ${missing[*]} " == *" mosquitto "* ]] && [ -d /run/systemd/system ] &&
    systemctl is-enabled --quiet mosquitto.service 2>/dev/null; then
	if "${sudo[@]}" systemctl disable --now --quiet mosquitto.service; then
		echo "deps: stopped and disabled the mosquitto service the package started" \
		    "(it holds port 1883); only its programs are used here"
	else
		echo "deps: could not stop the mosquitto service (it holds port 1883):" \
		    "systemctl disable --now mosquitto" >&2
	fi
fi
