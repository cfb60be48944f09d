# syntax=docker/dockerfile:1
# floe-stream: one image for every deployable (processor, ticker, sinks, sources, hooks).
#   docker build -t floe-stream .
#   docker run --rm floe-stream run processor        # ENTRYPOINT is `floe`
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: make the wheel, install it with its dependencies into a venv --------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# README.m[d]: copied when present (pyproject names it; setuptools only warns when it is absent).
COPY pyproject.toml README.m[d] ./
COPY src ./src
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/floe \
 && /opt/floe/bin/pip install /wheels/*.whl \
 && /opt/floe/bin/floe --help >/dev/null

# --- runtime: the venv only, no compilers, no sources, non-root -------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="floe-stream" \
      org.opencontainers.image.description="Real-time data-contract monitor (ODCS contracts over Kafka)" \
      org.opencontainers.image.source="https://github.com/floe-stream/floe-stream" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 floe \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin floe \
 && mkdir -p /etc/floe/contracts /etc/floe/config
COPY --from=build /opt/floe /opt/floe
ENV PATH=/opt/floe/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FLOE_CONTRACTS_DIR=/etc/floe/contracts \
    FLOE_HEALTH_PORT=8080 \
    XDG_CACHE_HOME=/tmp/.cache
# /tmp is the writable mount (the chart's emptyDir, compose's tmpfs): the compiled-contracts cache lives there
WORKDIR /tmp
# Numeric uid so Kubernetes runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8080
# Liveness of the health server (GET /healthz); orchestrators use their own probes.
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('FLOE_HEALTH_PORT', '8080'), timeout=2)"]
ENTRYPOINT ["floe"]
CMD ["run", "processor"]
