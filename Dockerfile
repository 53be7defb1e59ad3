# MicroCrop asset pipeline: one image for the code server, the webserver, the daemon, every run
# container (DockerRunLauncher) or Job (K8sRunLauncher), and the vendor sandbox.
# Build with deploy/build-image.sh (BuildKit; a private CA as a build secret); without an image
# registry, deploy/base-image.sh first builds this base from Debian's packages (docs/deployment.md#the-image).
FROM python:3.11-slim-bookworm AS build

# the build stage alone has binutils (strip) and uv; the final image gets neither
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends binutils >/dev/null \
    && rm -rf /var/lib/apt/lists/*
# A private certificate authority arrives as the BuildKit secret `ca_bundle`, mounted for one
# command at a time and never written to a layer; without it the system's own roots are used.
RUN --mount=type=secret,id=ca_bundle,target=/run/secrets/ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi; \
    pip install --no-cache-dir uv==0.13.9
ENV UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/opt/venv UV_PYTHON_DOWNLOADS=never UV_NO_CACHE=1
WORKDIR /app
# dependencies first (cached layer), exactly as locked: the demo extra (its in-process chain), not the test one
COPY pyproject.toml uv.lock ./
RUN --mount=type=secret,id=ca_bundle,target=/run/secrets/ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then export SSL_CERT_FILE=/run/secrets/ca_bundle; fi; \
    uv sync --frozen --no-dev --extra demo --no-install-project
# debug symbols out of the wheels' own shared libraries (the code is unchanged). Not the libraries
# auditwheel vendored into *.libs: patchelf rewrote those, and strip leaves them unloadable
RUN find /opt/venv -type f -not -path '*.libs/*'  \( -name '*.so' -o -name '*.so.*' \) -exec strip --strip-unneeded {} +
COPY README.md ./
COPY microcrop_assets ./microcrop_assets
# an editable install: the package runs from /app beside pyproject.toml, whose [tool.dg] section
# tells microcrop_assets/definitions.py where the defs folder is
RUN --mount=type=secret,id=ca_bundle,target=/run/secrets/ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then export SSL_CERT_FILE=/run/secrets/ca_bundle; fi; \
    uv sync --frozen --no-dev --extra demo
# test suites and unused libraries out, bytecode for what the processes import (its docstring says why)
COPY deploy/slim_venv.py /tmp/slim_venv.py
RUN /opt/venv/bin/python /tmp/slim_venv.py /opt/venv /app/microcrop_assets

FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 10001 microcrop
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app/pyproject.toml /app/
COPY --from=build /app/microcrop_assets /app/microcrop_assets
WORKDIR /opt/dagster/app
COPY --chown=microcrop:microcrop workspace.yaml deploy/workspace-compose.yaml ./
COPY --chown=microcrop:microcrop deploy/dagster.yaml /opt/dagster/dagster_home/dagster.yaml
ENV PATH=/opt/venv/bin:$PATH \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    MICROCROP_HOME=/opt/dagster/state \
    PYTHONUNBUFFERED=1
RUN mkdir -p /opt/dagster/state && chown -R microcrop:microcrop /opt/dagster
USER microcrop
EXPOSE 4000 3000 8700
# a Dagster command starts only once the instance's settings are set, else it names the missing ones
ENTRYPOINT ["python", "-m", "microcrop_assets.deployment.entrypoint"]
# default: the gRPC code server; compose overrides the command for the webserver, daemon and sandbox
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "microcrop_assets.definitions"]
