# newtonps image from an already built binary, on the locally made
# debootstrap base: nothing is compiled and nothing is pulled.
# docker/local/build-images stages the build context:
#   rootfs/usr/local/bin/newtonps          the binary (e.g. .build/release/newtonps)
#   rootfs/<same path as on the build host> every shared library ldd resolves
#                                           outside /lib, /usr/lib (the Swift
#                                           runtime from /opt/swift: libswift*,
#                                           libFoundation*, lib_FoundationICU,
#                                           libdispatch, libBlocksRuntime)
# The Debian libraries come from the Debian mirror: OpenBLAS, zlib and
# libstdc++ for the binary, SQLite for the job store (GRDB), libcurl for
# FoundationNetworking. docker/Dockerfile is the
# image for machines that can pull swift:6.3-bookworm and debian:bookworm-slim;
# this one matches its runtime stage (user, environment, ports, entrypoint).
ARG BASE_IMAGE=newtonps-base:bookworm
FROM ${BASE_IMAGE}
ARG EXTRA_PACKAGES=""
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get update -q \
    && apt-get install -y -q --no-install-recommends libopenblas0 zlib1g libstdc++6 libsqlite3-0 libcurl4 curl ca-certificates ${EXTRA_PACKAGES} \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 newtonps \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home newtonps \
    && mkdir -p /data \
    && chown newtonps:newtonps /data

COPY rootfs/ /
# Directories of the copied libraries, for a binary without a RUNPATH to them.
ARG LIBRARY_PATH=""
ENV LD_LIBRARY_PATH=${LIBRARY_PATH}
# Fail the build, not the first container, when a library is missing.
RUN ldd /usr/local/bin/newtonps \
    && ! ldd /usr/local/bin/newtonps | grep -q 'not found' \
    && /usr/local/bin/newtonps --help > /dev/null

# As docker/Dockerfile: keep multi-MB buffers mapped between uses; one BLAS
# thread per process.
ENV GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=134217728:glibc.malloc.top_pad=67108864 \
    OPENBLAS_NUM_THREADS=1

USER newtonps
WORKDIR /data
VOLUME ["/data"]
# 7070 driver RPC, 7071 server RPC, 9090-9092 HTTP /healthz /readyz /metrics
EXPOSE 7070 7071 9090 9091 9092
STOPSIGNAL SIGTERM
ENTRYPOINT ["newtonps"]
CMD ["--help"]
