"""Static checks of the local development stack (docker-compose.yaml + .env.example).

No Docker engine is needed: the compose file is parsed with PyYAML (anchors and ``<<`` merges
are resolved by ``yaml.safe_load``) and, when a compose CLI is installed, validated with
``docker compose config -q`` (which only parses and interpolates).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"

AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
)
REQUIRED_SERVICES = (*AIRFLOW_SERVICES, "postgres", "warehouse", "redis", "flower", "object-store")
CONNECTION_VARS = (
    "AIRFLOW_CONN_CLOSEOUT_WAREHOUSE",
    "AIRFLOW_CONN_HARVEST_DEFAULT",
    "AIRFLOW_CONN_TOGGL_DEFAULT",
    "AIRFLOW_CONN_CLOCKIFY_DEFAULT",
    "AIRFLOW_CONN_STRIPE_DEFAULT",
    "AIRFLOW_CONN_AIRFLOW_API",
    "AIRFLOW_CONN_FINANCE_SMTP",
    "AIRFLOW_CONN_FINANCE_WEBHOOK",
    "AIRFLOW_CONN_PLATFORM_WEBHOOK",
)
REPO_MOUNTS = {
    "/opt/airflow/dags": "dags",
}
# closeout comes from the wheel in the image; a mounted plugins/ would shadow it on sys.path
NOT_MOUNTED = ("/opt/airflow/plugins", "/opt/airflow/include")
# Host folders created at run time (by Docker / airflow-init), not required in the repo.
RUNTIME_HOST_PATHS = {"logs", "config"}
PG_DATA = "/var/lib/postgresql/data"
IMAGE_TAG_RE = re.compile(r"^apache/airflow:3\.3\.\d+(-python3\.\d+)?$")
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, $VAR -- but not the escaped $${VAR} / $$VAR.
COMPOSE_VAR_RE = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")
DEFAULT_RE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*):?-(.*)\}$")
SECRET_PATTERNS = {
    "Stripe live key": re.compile(r"\b[sr]k_live_[0-9A-Za-z]{10,}"),
    "Stripe test key": re.compile(r"\b[sr]k_test_[0-9A-Za-z]{10,}"),
    "Stripe live marker": re.compile(r"\bsk_live"),
    "Stripe webhook secret": re.compile(r"\bwhsec_[0-9A-Za-z]{10,}"),
    "Slack webhook": re.compile(r"hooks\.slack\.com/services/T[0-9A-Za-z]+/"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "GitHub token": re.compile(r"\bgh[pousr]_[0-9A-Za-z]{20,}"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
}


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict:
    data = yaml.safe_load(compose_text)
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f".env.example line is not KEY=value: {line!r}"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # list form: ["KEY=value", ...]
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _volumes(service: dict) -> list[tuple[str, str]]:
    """(host, container) pairs of the service's bind mounts / volumes (short or long syntax)."""
    pairs = []
    for vol in service.get("volumes") or []:
        if isinstance(vol, dict):
            pairs.append((str(vol.get("source", "")), str(vol["target"])))
        else:
            host, _, rest = str(vol).partition(":")
            pairs.append((host, rest.split(":")[0]))
    return pairs


def _command(service: dict) -> str:
    cmd = service.get("command", "")
    return " ".join(cmd) if isinstance(cmd, list) else str(cmd)


def _default(value: str) -> str:
    """Default of a ``${VAR:-default}`` expression, or the value itself when it is a literal."""
    match = DEFAULT_RE.match(value)
    return match.group(2) if match else value


def test_required_services_exist(services: dict) -> None:
    missing = [name for name in REQUIRED_SERVICES if name not in services]
    assert not missing, f"missing services: {missing}"


def test_celery_with_redis_worker_and_flower_profile(services: dict) -> None:
    assert _command(services["airflow-worker"]) == "celery worker"
    assert "celery" in " ".join(services["airflow-worker"]["healthcheck"]["test"])
    assert _command(services["flower"]) == "celery flower"
    assert services["flower"]["profiles"] == ["flower"]
    assert str(services["redis"]["image"]).startswith("redis:")
    assert "redis-cli" in " ".join(services["redis"]["healthcheck"]["test"])


def test_airflow_services_share_one_image_built_from_the_dockerfile(services: dict) -> None:
    builds = {name: json.dumps(services[name]["build"], sort_keys=True) for name in (*AIRFLOW_SERVICES, "flower")}
    images = {name: services[name]["image"] for name in (*AIRFLOW_SERVICES, "flower")}
    assert len(set(builds.values())) == 1 and len(set(images.values())) == 1, (builds, images)
    build = services["airflow-apiserver"]["build"]
    assert build["context"] == "." and (REPO_ROOT / build["dockerfile"]).is_file()
    base = build["args"]["AIRFLOW_IMAGE_NAME"]
    assert base.startswith("${AIRFLOW_IMAGE_NAME:-") and IMAGE_TAG_RE.match(_default(base)), base
    # the built image gets its own tag, never the official image's name
    assert not _default(images["airflow-apiserver"]).startswith("apache/airflow"), images


def test_dockerfile_installs_the_wheel_under_airflow_constraints() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert froms == ["${AIRFLOW_IMAGE_NAME}", "${AIRFLOW_IMAGE_NAME}"], froms
    default = re.search(r"^ARG AIRFLOW_IMAGE_NAME=(\S+)$", text, re.MULTILINE).group(1)
    assert IMAGE_TAG_RE.match(default) and default.startswith("apache/airflow:3.3.2-python3.11"), default
    assert "AS builder" in text and "pip wheel" in text and "--from=builder" in text
    version = re.search(r"^ARG AIRFLOW_VERSION=(\S+)$", text, re.MULTILINE).group(1)
    python = re.search(r"^ARG PYTHON_VERSION=(\S+)$", text, re.MULTILINE).group(1)
    assert version == default.split(":")[1].split("-")[0] and default.endswith(f"python{python}")
    assert "https://raw.githubusercontent.com/apache/airflow/constraints-${AIRFLOW_VERSION}/" \
        "constraints-${PYTHON_VERSION}.txt" in text
    assert '--constraint "${AIRFLOW_CONSTRAINTS_URL}"' in text
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in text and "/tmp/dist/closeout-*.whl" in text
    assert re.search(r"^COPY .*dags/ /opt/airflow/dags/$", text, re.MULTILINE)
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in text
    # every source the Dockerfile copies exists and is not excluded by .dockerignore
    ignored = {line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()}
    for source in re.findall(r"^COPY (?:--chown=\S+ )?(?!--from)(.+) \S+$", text, re.MULTILINE):
        for item in source.split():
            assert (REPO_ROOT / item).exists(), item
            assert item.rstrip("/") not in ignored, item


def test_object_store_holds_the_artifacts(services: dict) -> None:
    store = services["object-store"]
    assert str(store["image"]).startswith("minio/minio:")
    assert store.get("healthcheck")
    init = services["object-store-init"]
    assert init["depends_on"]["object-store"]["condition"] == "service_healthy"
    env = _environment(services["airflow-worker"])
    url = urlsplit(_default(env["CLOSEOUT_ARTIFACTS_URL"]))
    assert (url.scheme, url.hostname, url.path) == ("s3", "closeout", "/artifacts")
    assert f"local/{url.hostname}" in _command(init)  # the bucket the URL names is created
    conn = urlsplit(_default(env["AIRFLOW_CONN_CLOSEOUT_ARTIFACTS"]))
    assert conn.scheme == "aws" and "endpoint_url=http%3A%2F%2Fobject-store%3A9000" in conn.query
    store_env = _environment(store)
    assert (conn.username, conn.password) == (store_env["MINIO_ROOT_USER"], store_env["MINIO_ROOT_PASSWORD"])


def test_depends_on_targets_exist(services: dict) -> None:
    for name, service in services.items():
        for target in service.get("depends_on", {}):
            assert target in services, f"{name} depends on unknown service {target}"
            assert target != name


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_service_uses_celery_executor(services: dict, name: str) -> None:
    env = _environment(services[name])
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis"
    assert urlsplit(env["AIRFLOW__CELERY__RESULT_BACKEND"]).hostname == "postgres"
    assert _default(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).startswith("postgresql")
    assert urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).hostname == "postgres"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${AIRFLOW__API_AUTH__JWT_SECRET")
    assert env["AIRFLOW__CORE__FERNET_KEY"].startswith("${AIRFLOW__CORE__FERNET_KEY")


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_service_mounts_repo_folders(services: dict, name: str) -> None:
    mounts = {container: host for host, container in _volumes(services[name])}
    for container, host in REPO_MOUNTS.items():
        assert container in mounts, f"{name} does not mount {container}"
        assert Path(mounts[container]).name == host, (name, container, mounts[container])
    for container in NOT_MOUNTED:
        assert container not in mounts, f"{name} mounts {container}, shadowing the installed closeout"


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_service_has_closeout_connections(services: dict, name: str) -> None:
    env = _environment(services[name])
    missing = [var for var in CONNECTION_VARS if var not in env]
    assert not missing, f"{name} lacks {missing}"
    for var in CONNECTION_VARS:
        assert env[var].startswith("${" + var), f"{name}: {var} must come from the environment"
    warehouse_uri = urlsplit(_default(env["AIRFLOW_CONN_CLOSEOUT_WAREHOUSE"]))
    assert warehouse_uri.scheme in {"postgres", "postgresql"}
    assert warehouse_uri.hostname == "warehouse"
    # Every other connection defaults to empty (= not configured): no credentials in the file.
    for var in CONNECTION_VARS:
        if var != "AIRFLOW_CONN_CLOSEOUT_WAREHOUSE":
            assert env[var] == "${" + var + ":-}", f"{name}: {var} = {env[var]!r}"


def test_warehouse_service_matches_connection(services: dict) -> None:
    warehouse = services["warehouse"]
    assert str(warehouse["image"]).startswith("postgres:16")
    env = _environment(warehouse)
    uri = urlsplit(_default(_environment(services["airflow-scheduler"])["AIRFLOW_CONN_CLOSEOUT_WAREHOUSE"]))
    assert uri.username == env["POSTGRES_USER"]
    assert uri.password == env["POSTGRES_PASSWORD"]
    assert uri.path.lstrip("/") == env["POSTGRES_DB"]
    assert (uri.port or 5432) == 5432
    assert warehouse.get("healthcheck")


def test_postgres_services_have_separate_volumes(compose: dict, services: dict) -> None:
    named = set(compose.get("volumes") or {})
    pg_volumes = {}
    for name in ("postgres", "warehouse"):
        data_mounts = [host for host, target in _volumes(services[name]) if target == PG_DATA]
        assert data_mounts, f"{name} has no data volume"
        assert data_mounts[0] in named, f"{name} data volume {data_mounts[0]} is not a named volume"
        pg_volumes[name] = data_mounts[0]
    assert pg_volumes["postgres"] != pg_volumes["warehouse"]


def test_apiserver_runs_api_server_on_8080(services: dict) -> None:
    api = services["airflow-apiserver"]
    assert _command(api) == "api-server"
    container_ports = [str(p).split(":")[-1] for p in api.get("ports") or []]
    assert "8080" in container_ports
    assert "/api/v2/version" in " ".join(api["healthcheck"]["test"])


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("airflow-scheduler", "scheduler"),
        ("airflow-dag-processor", "dag-processor"),
        ("airflow-triggerer", "triggerer"),
    ],
)
def test_component_commands(services: dict, name: str, command: str) -> None:
    assert _command(services[name]) == command


@pytest.mark.parametrize("name", [n for n in AIRFLOW_SERVICES if n != "airflow-init"])
def test_long_running_services_wait_for_init_and_databases(services: dict, name: str) -> None:
    service = services[name]
    depends = service["depends_on"]
    assert depends["airflow-init"]["condition"] == "service_completed_successfully"
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["warehouse"]["condition"] == "service_healthy"
    assert service.get("healthcheck"), f"{name} has no healthcheck"


def test_init_migrates_creates_admin_and_imports_pools(services: dict) -> None:
    init = services["airflow-init"]
    script = _command(init)
    assert "airflow db migrate" in script
    assert "airflow pools import /opt/airflow/pools.json" in script
    assert "python -m closeout.warehouse migrate" in script  # closeout's migrations, from the installed package
    mounts = {container: host for host, container in _volumes(init)}
    assert Path(mounts["/opt/airflow/pools.json"]).name == "pools.json"
    env = _environment(init)
    assert env["_AIRFLOW_WWW_USER_USERNAME"].startswith("${_AIRFLOW_WWW_USER_USERNAME")
    assert env["_AIRFLOW_WWW_USER_PASSWORD"].startswith("${_AIRFLOW_WWW_USER_PASSWORD")
    assert "SimpleAuthManager" in env["AIRFLOW__CORE__AUTH_MANAGER"]
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].endswith(":admin")


def test_no_pip_install_at_container_start(compose: dict) -> None:
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in yaml.safe_dump(compose)


def test_mounted_repo_paths_exist(services: dict) -> None:
    missing = set()
    for name, service in services.items():
        for host, _container in _volumes(service):
            if not host.startswith("./"):
                continue  # named volume
            rel = Path(host)
            if rel.parts[0] in RUNTIME_HOST_PATHS:
                continue
            if not (REPO_ROOT / rel).exists():
                missing.add(f"{name}: {host}")
    assert not missing, f"bind-mounted paths missing from the repo: {sorted(missing)}"


def test_every_compose_variable_is_in_env_example(compose_text: str, env_example: dict) -> None:
    referenced = {a or b for a, b in COMPOSE_VAR_RE.findall(compose_text)}
    assert referenced, "no ${VAR} found: regex broken?"
    missing = sorted(referenced - set(env_example))
    assert not missing, f".env.example lacks: {missing}"


def test_env_example_image_is_3_3(env_example: dict) -> None:
    assert IMAGE_TAG_RE.match(env_example["AIRFLOW_IMAGE_NAME"])


def test_env_example_has_no_configured_external_connections(env_example: dict) -> None:
    for var in CONNECTION_VARS:
        assert var in env_example, f".env.example lacks {var}"
        if var != "AIRFLOW_CONN_CLOSEOUT_WAREHOUSE":
            assert env_example[var] == "", f".env.example must leave {var} empty (placeholder only)"
    assert env_example["AIRFLOW__CORE__FERNET_KEY"] == ""


@pytest.mark.parametrize("path", [COMPOSE_FILE, ENV_EXAMPLE], ids=lambda p: p.name)
def test_no_secret_like_literals(path: Path) -> None:
    text = path.read_text()
    found = [label for label, pattern in SECRET_PATTERNS.items() if pattern.search(text)]
    assert not found, f"{path.name} contains secret-like literals: {found}"


def _compose_cli() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_docker_compose_config_parses() -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("neither the `docker compose` plugin nor `docker-compose` is installed")
    # .env.example as env file: hermetic (ignores a developer's .env) and proves it is loadable.
    result = subprocess.run(
        [*cli, "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
