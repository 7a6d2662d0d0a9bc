# The broker in a container: docker build -t broker . ; see the README.
#
# The build stage runs the README's set-up steps (scripts/deps.sh, make)
# and installs into /out; the runtime stage has the runtime libraries only
# and runs the broker as the unprivileged user broker, in the foreground,
# listening on all addresses, with its data in the volume /var/lib/broker.

FROM debian:bookworm-slim AS build
WORKDIR /src
COPY . .
RUN scripts/deps.sh build \
 && make \
 && make install DESTDIR=/out PREFIX=/usr \
 && sed -e 's|^#bind_address .*|bind_address 0.0.0.0|' \
        -e 's|^#data_dir .*|data_dir /var/lib/broker|' \
        etc/broker.conf > /out/etc/broker/broker.conf \
 && /out/usr/sbin/broker -t -c /out/etc/broker/broker.conf

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        libevent-core-2.1-7 libgdbm6 libjansson4 libbsd0 zlib1g libsystemd0 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --user-group --home-dir /var/lib/broker --no-create-home \
        --shell /usr/sbin/nologin broker \
 && install -d -o broker -g broker -m 0750 /var/lib/broker
COPY --from=build /out/usr/sbin/broker /usr/sbin/broker
COPY --from=build /out/usr/libexec/broker/topicd /usr/libexec/broker/topicd
COPY --from=build /out/etc/broker/broker.conf /etc/broker/broker.conf
USER broker
WORKDIR /var/lib/broker
VOLUME /var/lib/broker
EXPOSE 1883 4040 4041
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/sbin/broker", "-c", "/etc/broker/broker.conf"]
