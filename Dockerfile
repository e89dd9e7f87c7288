# syntax=docker/dockerfile:1
# cce-upgrade-watch: the operator image.
#
#   docker build -t cce-upgrade-watch:0.1.0 .
#
# Two stages: the builder turns the project and every dependency into wheels;
# the runtime stage installs those wheels only (no network, no compiler, no
# source tree) and runs as a numeric non-root user on a read-only root
# filesystem (the only writable path it needs is /tmp, an emptyDir in the
# Deployment). tests/unit/shipping/test_dockerfile.py checks these rules and
# replays the install steps.

# ---------------------------------------------------------------- builder
FROM python:3.12-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
# The project's wheel and a wheel of every dependency, all in /wheels.
RUN pip wheel --wheel-dir /wheels .

# ---------------------------------------------------------------- runtime
FROM python:3.12-slim AS runtime
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
      org.opencontainers.image.base.name="python:3.12-slim"
# No .pyc written at run time (the install below compiles them), unbuffered logs,
# and a HOME that is writable under a read-only root filesystem.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# Install from the builder's wheels only, then drop pip: nothing in the final
# image can fetch or build packages. The user entry lets Python resolve the
# numeric UID (kopf asks for the user name when it starts).
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels cce-upgrade-watch \
    && pip uninstall --yes pip \
    && groupadd --system --gid 65532 cce-upgrade-watch \
    && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin cce-upgrade-watch
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080 9090
# checkov:skip=CKV_DOCKER_2:Kubernetes ignores HEALTHCHECK; the Deployment probes kopf's /healthz (--liveness)
ENTRYPOINT ["cce-upgrade-watch", "run"]
CMD ["--all-namespaces", "--liveness=http://0.0.0.0:8080/healthz", "--metrics-port=9090"]
