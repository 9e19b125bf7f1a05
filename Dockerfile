# autocall-bridge: build stage installs the service into a virtual environment; the final stage
# copies that environment onto a clean slim image with no compiler, no pip and no package lists.
# Build: docker build -t autocall-bridge:0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

# tini-static: PID 1 in the final image (forwards SIGTERM to the service, reaps zombies).
ARG TINI_VERSION=0.19.0-1+b3
RUN apt-get update \
 && apt-get install -y --no-install-recommends "tini=${TINI_VERSION}" \
 && rm -rf /var/lib/apt/lists/*

RUN python -m venv --without-pip /opt/venv
WORKDIR /src

# Dependencies first, from pyproject.toml's exact pins: this layer survives code changes.
COPY pyproject.toml README.md ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
      > /tmp/requirements.txt \
 && pip --python /opt/venv/bin/python install --no-cache-dir -r /tmp/requirements.txt

COPY service/ service/
RUN pip --python /opt/venv/bin/python install --no-cache-dir --no-deps . \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib \
 && /opt/venv/bin/autocall-bridge --help > /dev/null


FROM ${PYTHON_IMAGE}

ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="autocall-bridge" \
      org.opencontainers.image.description="Turns e-commerce events from RabbitMQ into OMICall automated voice calls, with one outcome event for each." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# A fixed numeric user, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 autocall \
 && useradd --system --uid 10001 --gid autocall --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin autocall

COPY --from=build /usr/bin/tini-static /usr/bin/tini
COPY --from=build /opt/venv /opt/venv
# Example templates: `autocall-bridge check /app/examples/templates.yaml` works in the image.
COPY examples/ /app/examples/

# The service writes nothing to disk: bytecode was compiled at build time, logs go to stdout.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AUTOCALL_HTTP_PORT=8080 \
    AUTOCALL_TEMPLATES=/etc/autocall/templates.yaml

WORKDIR /app
USER 10001:10001
EXPOSE 8080 8081
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('AUTOCALL_HTTP_PORT', '8080'), timeout=2)"]

# tini is PID 1; the service handles SIGTERM itself (drains, then exits 0).
ENTRYPOINT ["/usr/bin/tini", "--", "autocall-bridge"]
CMD ["run"]
