# Prometheus from Debian's `prometheus` package, on the locally made
# debootstrap base (docker/local/build-images makes both): for machines that
# cannot pull prom/prometheus. Same entrypoint and volume layout as
# prom/prometheus, so docker/compose.yaml runs either image unchanged.
ARG BASE_IMAGE=newtonps-base:bookworm
FROM ${BASE_IMAGE}
# policy-rc.d: the package's maintainer scripts must not try to start the
# service inside the image build.
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d \
    && chmod 0755 /usr/sbin/policy-rc.d \
    && export DEBIAN_FRONTEND=noninteractive \
    && apt-get update -q \
    && apt-get install -y -q --no-install-recommends prometheus wget \
    && rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d \
    && mkdir -p /prometheus \
    && chown prometheus:prometheus /prometheus \
    && /usr/bin/prometheus --version
USER prometheus
WORKDIR /prometheus
VOLUME ["/prometheus"]
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
