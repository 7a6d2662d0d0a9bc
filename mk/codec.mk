# The pure codecs: built into one library (libcodec.a) by mk/build.mk, and
# linked with their own flags by the fuzzers and the load generator
# (Makefile).  MQTT_CODEC_SRC is the MQTT codec alone (3.1, 3.1.1, 5.0);
# broker/core/wscodec.c is WebSockets' (the upgrade request, frames).
MQTT_CODEC_SRC := broker/mqtt/codec.c broker/mqtt/decode.c broker/mqtt/check.c \
	broker/mqtt/encode.c broker/mqtt/wire.c broker/mqtt/props.c \
	broker/mqtt/props_list.c broker/mqtt/props_pack.c broker/mqtt/reason.c
CODEC_SRC := $(MQTT_CODEC_SRC) broker/json/codec.c broker/json/bignum.c \
	broker/json/login_line.c broker/mqtt/will_rec.c broker/core/wscodec.c
