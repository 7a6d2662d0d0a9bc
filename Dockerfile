# The broker in a container: docker build -t broker . ; see the README.
#
# The build stage runs the README's set-up steps (scripts/deps.sh, make)
# and installs into /out; the runtime stage has the runtime libraries only
# and runs the broker as the unprivileged user broker, uid 1883 and gid
# 1883 (fixed, so that a bind mount can be given to it: chown -R 1883:1883
# DIR), in the foreground, listening on all addresses, with its data in
# the volume /var/lib/broker.

FROM debian:bookworm-slim AS build
WORKDIR /src
# The toolchain first: a change to the sources does not reinstall it.
COPY scripts/deps.sh scripts/deps.sh
RUN scripts/deps.sh build
COPY . .
RUN make \
 && make install DESTDIR=/out PREFIX=/usr \
 && groupadd --system --gid 1883 broker \
 && useradd --system --uid 1883 --gid 1883 --no-create-home --shell /usr/sbin/nologin broker \
 && sed -e 's|^#bind_address .*|bind_address 0.0.0.0|' \
        -e 's|^#data_dir .*|data_dir /var/lib/broker|' \
        etc/broker.conf > /out/etc/broker/broker.conf \
 && /out/usr/sbin/broker -t -c /out/etc/broker/broker.conf

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        libevent-core-2.1-7 libevent-openssl-2.1-7 libssl3 libgdbm6 libjansson4 libbsd0 \
        libdeflate0 libsystemd0 \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 1883 broker \
 && useradd --system --uid 1883 --gid 1883 --home-dir /var/lib/broker \
        --no-create-home --shell /usr/sbin/nologin broker \
 && install -d -o broker -g broker -m 0750 /var/lib/broker
COPY --from=build /out/usr/sbin/broker /usr/sbin/broker
COPY --from=build /out/usr/libexec/broker/topicd /usr/libexec/broker/topicd
COPY --from=build /out/etc/broker/broker.conf /etc/broker/broker.conf
COPY scripts/healthcheck.sh /usr/local/bin/broker-healthcheck
USER broker
WORKDIR /var/lib/broker
VOLUME /var/lib/broker
EXPOSE 1883 4040 4041
# Healthy when the broker answers an MQTT CONNECT on port 1883.
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
        CMD ["/usr/local/bin/broker-healthcheck", "1883"]
STOPSIGNAL SIGTERM
# The data are in the volume whatever a mounted configuration says.
ENTRYPOINT ["/usr/sbin/broker", "-c", "/etc/broker/broker.conf", "-D", "/var/lib/broker"]
