# The modelfleet operator image, as the Helm chart (charts/modelfleet) runs it.
# Not built in CI or by `make`: the development environment has no container runtime, so this file
# is untested; the chart's RBAC is proven instead by running the operator out-of-cluster with the
# chart's ServiceAccount token (tests/integration/test_helm_chart.py).
#
#   docker build -t ghcr.io/modelfleet/modelfleet:0.1.0 .

FROM python:3.11-slim AS build
WORKDIR /src
# Only what the package needs; the rest of the repo (tests, bench, hack) stays out of the image.
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
# Numeric UID so the chart's runAsNonRoot can verify it without resolving names.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin modelfleet
USER 10001:10001
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
ENTRYPOINT ["modelfleet", "run"]
