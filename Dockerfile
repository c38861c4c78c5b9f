# The journey engine's command line, for the engine's services in docker-compose.yml:
#   docker build -t journey-engine .
#   docker run --rm journey-engine demo --customers 100
# The build stage installs the dependencies exactly as locked (requirements.lock, made by
# `make lock`), compiles the fold and the decider with mypyc and installs the project; the
# image itself gets the virtualenv and the code, and neither the compiler nor the build tools.

FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A C compiler for the fold. Debian's current release of each, as the base image is pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
# The dependencies first, each lock in a layer of its own: a change of the code installs
# nothing again. The virtualenv has no pip or setuptools: nothing unlocked goes in.
COPY requirements.lock /tmp/requirements.lock
RUN python -m venv --without-pip /opt/venv \
    && pip --python /opt/venv/bin/python install --require-hashes --no-deps \
        -r /tmp/requirements.lock
# mypyc and setuptools beside the virtualenv, found through PYTHONPATH while building.
COPY requirements-build.lock /tmp/requirements-build.lock
RUN pip install --require-hashes --no-deps --target /opt/build -r /tmp/requirements-build.lock
WORKDIR /app
COPY pyproject.toml README.md ./
COPY scripts/compile.py scripts/
COPY engine engine
COPY projections projections
COPY schemas schemas
COPY consumers consumers
COPY stores stores
COPY journey journey
# --require: an image whose fold and decider are not compiled fails to build instead of
# running slower. The project is installed editable: the compiled modules stay beside their
# sources, where they were built and tested.
RUN PYTHONPATH=/opt/build /opt/venv/bin/python scripts/compile.py --require \
    && PYTHONPATH=/opt/build pip --python /opt/venv/bin/python install --no-deps \
        --no-build-isolation --editable . \
    && rm -rf build scripts \
    && /opt/venv/bin/python -m compileall -q engine projections schemas consumers stores journey

FROM python:3.11.11-slim-bookworm
# A fixed, numeric user: orchestrators that refuse root can tell it is not.
RUN useradd --uid 10001 --user-group --create-home journey \
    && install -d -o journey -g journey /var/lib/journey
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
# The embedded store's files, and what commands write without being told where, go to
# /var/lib/journey (mount a volume there to keep them). Every process that runs until stopped
# serves /healthz, /readyz and /metrics on port 9100; `journey serve` answers on its own port.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    JOURNEY_DATA_DIR=/var/lib/journey \
    JOURNEY_METRICS_PORT=9100 \
    JOURNEY_METRICS_HOST=0.0.0.0
WORKDIR /var/lib/journey
USER 10001:10001
EXPOSE 9100
# Python's urllib, as the slim image has no curl.
HEALTHCHECK --interval=10s --timeout=5s --retries=3 --start-period=30s \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['JOURNEY_METRICS_PORT']}/readyz\", timeout=3)"]
ENTRYPOINT ["journey"]
CMD ["--help"]
