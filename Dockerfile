# syntax=docker/dockerfile:1
# cce-upgrade-watch: the operator image.
#
#   docker build -t cce-upgrade-watch:0.1.0 .        (or: podman build ...)
#
# Debian 12 "bookworm" with Debian's own python3 (3.11), nothing else added at run
# time. Three stages:
#   python   the base plus Debian's python3; both later stages start from it, so the
#            virtual environment made in one runs unchanged in the other
#   builder  installs every dependency exactly as requirements/image.txt locks it
#            (wheels only, each checked against its sha256: pip --require-hashes),
#            builds the project's wheel offline with the locked setuptools, and
#            installs it into /opt/cce-upgrade-watch
#   runtime  copies that environment only (no pip, no setuptools, no compiler, no
#            source tree) and runs as a numeric non-root user on a read-only root
#            filesystem (the only writable path it needs is /tmp, an emptyDir in the
#            Deployment)
# hack/image builds this file for real (podman, from a Debian root filesystem made by
# mmdebstrap standing in for the base) and tests/e2e/test_image.py runs the result
# as the Deployment does; tests/unit/shipping/test_dockerfile.py checks the rules.

# The base, pinned by digest: a tag moves, a digest does not. To refresh it, look up
# the tag's current (multi-platform) digest, e.g.
#   skopeo inspect --format '{{.Digest}}' docker://debian:bookworm-slim
#   docker buildx imagetools inspect debian:bookworm-slim     (the "Digest:" line)
# paste it below, and run `hack/image build` and the image test
# (`.venv/bin/pytest tests/e2e/test_image.py`). BASE_IMAGE is a build argument so
# the tests can build this same file on a machine without a registry; releases use
# the default.
ARG BASE_IMAGE=debian:bookworm-slim@sha256:88200866dfff7ea7f5cbcb6ec7c8a701889efe6fe859fe64d6990e4b07ea4171

# ---------------------------------------------------------------- python
FROM ${BASE_IMAGE} AS python
# No recommends: python3 alone (the interpreter and its standard library); apt's
# package lists and caches (80 MB) leave with the same layer.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends python3 \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*

# ---------------------------------------------------------------- builder
FROM python AS builder
# pip trusts Debian's CA store (ca-certificates): the same trust as the system's,
# and the one an HTTPS proxy's CA is added to.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN apt-get update \
    && apt-get install --yes --no-install-recommends python3-venv ca-certificates \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The dependencies first, in a layer of their own: it changes only with the lock.
COPY requirements/image.txt requirements/build.txt requirements/
RUN python3 -m venv /opt/cce-upgrade-watch \
    && /opt/cce-upgrade-watch/bin/pip install --require-hashes --only-binary=:all: \
       -r requirements/image.txt \
    && python3 -m venv /opt/build \
    && /opt/build/bin/pip install --require-hashes --only-binary=:all: \
       -r requirements/build.txt
COPY pyproject.toml README.md ./
COPY operator/ operator/
# The project's wheel, built offline by the locked setuptools, then installed with
# no dependency resolution (all are present, as locked); pip check proves the set is
# complete and consistent. pip and setuptools leave the environment afterwards.
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --no-index --wheel-dir /wheels . \
    && /opt/cce-upgrade-watch/bin/pip install --no-deps --no-index /wheels/cce_upgrade_watch-*.whl \
    && /opt/cce-upgrade-watch/bin/pip check \
    && /opt/cce-upgrade-watch/bin/pip uninstall --yes pip setuptools

# ---------------------------------------------------------------- runtime
FROM python AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE_URL=
LABEL org.opencontainers.image.title="cce-upgrade-watch" \
      org.opencontainers.image.description="Kubernetes operator that watches Huawei Cloud CCE Autopilot cluster upgrades" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.base.name="debian:bookworm-slim"
# No .pyc written at run time (pip compiled them at install), unbuffered logs, a HOME
# that is writable under a read-only root filesystem, and the environment first on PATH.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    PATH=/opt/cce-upgrade-watch/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY --from=builder /opt/cce-upgrade-watch /opt/cce-upgrade-watch
# The user entry lets Python resolve the numeric UID (kopf asks for the user name
# when it starts without POD_ID).
RUN groupadd --system --gid 65532 cce-upgrade-watch \
    && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin cce-upgrade-watch
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080 9090
# checkov:skip=CKV_DOCKER_7:FROM ${BASE_IMAGE} is the digest-pinned ARG above; checkov does not expand ARGs (test_dockerfile.py checks the pin)
# checkov:skip=CKV_DOCKER_2:Kubernetes ignores HEALTHCHECK; the Deployment probes kopf's /healthz (--liveness)
ENTRYPOINT ["cce-upgrade-watch", "run"]
CMD ["--all-namespaces", "--liveness=http://0.0.0.0:8080/healthz", "--metrics-port=9090"]
