# The pure codecs: built into one library (libcodec.a) by mk/build.mk, and
# linked with their own flags by the fuzzers and the load generator
# (Makefile).
CODEC_SRC := broker/mqtt/codec.c broker/mqtt/decode.c broker/json/codec.c \
	broker/json/login_line.c
