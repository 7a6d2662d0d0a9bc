#!/bin/bash
# The container's HEALTHCHECK: healthy when the broker answers an MQTT
# CONNECT on 127.0.0.1 with a CONNACK that accepts it, or that refuses it
# for want of a user name (return code 4 or 5: the container listens on
# every address, where anonymous clients are refused unless
# allow_anonymous is true).  Needs only bash and
# coreutils (both in debian:bookworm-slim).
#   healthcheck.sh [PORT]     the MQTT port, 1883 by default
# Exit status 0: healthy; 1: not (with the reason on stderr).
port=${1:-1883}

unhealthy() {
	echo "unhealthy: $*" >&2
	exit 1
}

{ exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null ||
	unhealthy "nothing accepts connections on 127.0.0.1 port $port"
# CONNECT: MQTT 3.1.1, clean session, keep-alive 10 s, empty client id.
printf '\x10\x0c\x00\x04MQTT\x04\x02\x00\x0a\x00\x00' >&3 ||
	unhealthy "cannot send CONNECT to port $port"
ack=$(timeout 5 head -c 4 <&3 | od -An -tx1)
ack=${ack//[[:space:]]/}
case $ack in
20020000 | 20020004 | 20020005) ;;
*) unhealthy "no CONNACK accepting the connection, or refusing it for its login, on port $port (got '$ack')" ;;
esac
printf '\xe0\x00' >&3 2>/dev/null	# DISCONNECT; the broker may have closed first
exit 0
