# closeout on the official Airflow image: the closeout wheel and its dependencies installed under Airflow's
# constraints, the thin DAG files copied in. docker-compose.yaml builds it (`build: .`); a platform team
# builds and pushes it the same way:
#   docker build -t registry.example.com/closeout-airflow:0.1.0 .
# https://airflow.apache.org/docs/docker-stack/build.html

ARG AIRFLOW_IMAGE_NAME=apache/airflow:3.3.2-python3.11

# --- builder: the wheel, built from pyproject.toml/setup.py (include/ ships inside as closeout._include) ---
FROM ${AIRFLOW_IMAGE_NAME} AS builder
WORKDIR /tmp/closeout-src
COPY --chown=airflow:0 pyproject.toml setup.py README.md requirements.txt ./
COPY --chown=airflow:0 plugins/ ./plugins/
COPY --chown=airflow:0 include/ ./include/
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /tmp/dist .

# --- runtime: Airflow + closeout, nothing from the source tree but the DAG files ---
FROM ${AIRFLOW_IMAGE_NAME}
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
ARG AIRFLOW_CONSTRAINTS_URL=https://raw.githubusercontent.com/apache/airflow/constraints-${AIRFLOW_VERSION}/constraints-${PYTHON_VERSION}.txt
COPY --from=builder /tmp/dist/ /tmp/dist/
# apache-airflow is named with its version so pip never moves Airflow itself; the amazon provider (with s3fs)
# gives ObjectStoragePath its s3:// filesystem for CLOSEOUT_ARTIFACTS_URL.
RUN python -m pip install --no-cache-dir \
        "apache-airflow==${AIRFLOW_VERSION}" \
        "apache-airflow-providers-amazon[s3fs]" \
        /tmp/dist/closeout-*.whl \
        --constraint "${AIRFLOW_CONSTRAINTS_URL}" \
    && python -c "import closeout.paths as p; assert p.packaged_include_dir(), 'closeout resources missing'" \
    && airflow providers list -o plain | grep -q '^closeout '
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 pools.json /opt/airflow/pools.json
