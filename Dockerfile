# The modelfleet operator image, as the Helm chart (charts/modelfleet) runs it.
# Not built in CI or by `make`: the development environment has no container runtime. What can be
# checked without one is: tests/unit/test_dockerfile.py reads this file (pinned base, numeric
# non-root user matching the chart, the package without extras, modelfleet.dev left out, the
# entry point) and runs `modelfleet run` from a copy of the package laid out as this build leaves
# it; the chart's RBAC is proven by running the operator out-of-cluster with the chart's
# ServiceAccount token (tests/integration/test_helm_chart.py).
#
#   docker build -t ghcr.io/modelfleet/modelfleet:0.1.0 .
#
# The base is pinned by version. Pin it by digest too when you build and publish (the digest
# could not be resolved from where this file was written: no registry access):
#   docker buildx imagetools inspect python:3.11.14-slim-bookworm   # prints the sha256 digest
#   docker build --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest> ...

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
# Only what the package needs; the rest of the repo (tests, bench, hack) stays out of the image.
COPY pyproject.toml README.md ./
COPY operator ./operator
# Development-only code (local control plane, engine emulator, trace simulator, demo) never
# ships: it is deleted before the install, so the wheel has no modelfleet.dev at all. The
# package is installed without extras: the operator's runtime dependencies only (no plotly).
RUN rm -rf operator/modelfleet/dev \
    && pip install --no-cache-dir --no-compile --prefix=/install . \
    && PYTHONPATH=/install/lib/python3.11/site-packages \
       python -c "import modelfleet.handlers.main, modelfleet.cli.run" \
    && PYTHONPATH=/install/lib/python3.11/site-packages /install/bin/modelfleet run --help >/dev/null

FROM ${PYTHON_IMAGE}
COPY --from=build /install /usr/local
# Numeric UID/GID (the chart's runAsUser/runAsGroup) so runAsNonRoot can verify it without
# resolving names; no home directory, no shell.
RUN groupadd --system --gid 10001 modelfleet \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin modelfleet
USER 10001:10001
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp
ENTRYPOINT ["modelfleet", "run"]
