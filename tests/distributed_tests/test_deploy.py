"""docker-compose.yml, the Dockerfiles and the scale-out guide, parsed and checked.

No Docker engine is needed: these read the files as data and check them
against what the code actually reads (CLI options' environment variables, the
service's settings, the worker's liveness variables).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import typer
import yaml
from sqlalchemy.engine import make_url

from lrsearch.cli.main import app
from lrsearch.service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# Read by the worker process itself (workers.loop / storage), not by CLI options.
WORKER_PROCESS_ENV = {
    "LRSEARCH_STORAGE",
    "LRSEARCH_HEARTBEAT_S",
    "LRSEARCH_GRACE_S",
    "LRSEARCH_STOP_TIMEOUT_S",
}
_VAR = re.compile(r"\$\{(\w+)(:?[-?])")


class _UnsetError(Exception):
    """A ``${VAR:?message}`` whose variable is unset: compose refuses to start."""


def _interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's ``${VAR:-default}``, ``${VAR-default}`` and ``${VAR:?error}``, nested too.

    Raises:
        _UnsetError: A required variable is unset (or empty, for ``:?``), with its message.
    """
    env = env or {}
    out = []
    i = 0
    while (m := _VAR.search(value, i)) is not None:
        out.append(value[i : m.start()])
        depth, j = 1, m.end()
        while depth:  # the operand runs to the matching brace: it may hold ${...} itself
            if value.startswith("${", j):
                depth, j = depth + 1, j + 2
                continue
            depth -= value[j] == "}"
            j += 1
        name, op, operand = m.group(1), m.group(2), value[m.end() : j - 1]
        is_set = name in env and (env[name] != "" or not op.startswith(":"))
        if is_set:
            out.append(env[name])
        elif op.endswith("?"):
            raise _UnsetError(_interpolate(operand, env))
        else:
            out.append(_interpolate(operand, env))
        i = j
    out.append(value[i:])
    return "".join(out)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping"
    return {k: str(v) for k, v in env.items()}


def _worker_option_envvars() -> set[str]:
    command = typer.main.get_command(app)
    worker = command.commands["worker"]  # type: ignore[attr-defined]
    names: set[str] = set()
    for param in worker.params:
        envvar = getattr(param, "envvar", None)
        if isinstance(envvar, str):
            names.add(envvar)
    return names


def _worker_settings_env() -> set[str]:
    from lrsearch.workers.settings import WorkerSettings, env_name

    return {env_name(field) for field in WorkerSettings.model_fields}


def _dockerfile(name: str) -> str:
    return (ROOT / name).read_text()


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_the_stack_has_its_services_and_a_data_volume(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    assert {"postgres", "migrate", "api", "worker"} <= set(services)
    assert "pgdata" in compose["volumes"]
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]


def test_postgres_has_a_pg_isready_healthcheck(services: dict[str, Any]) -> None:
    check = services["postgres"]["healthcheck"]
    assert "pg_isready" in " ".join(check["test"])
    assert check["retries"] >= 3


@pytest.mark.parametrize("name", ["migrate", "api", "worker"])
def test_everything_waits_for_a_healthy_postgres(services: dict[str, Any], name: str) -> None:
    assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", ["api", "worker"])
def test_api_and_workers_wait_for_the_schema_step(services: dict[str, Any], name: str) -> None:
    assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["command"] == ["lrsearch", "db", "upgrade"]


@pytest.mark.parametrize("name", ["migrate", "api", "worker"])
def test_storage_url_points_at_the_postgres_service(services: dict[str, Any], name: str) -> None:
    url = _interpolate(_env(services[name])["LRSEARCH_STORAGE"], {"POSTGRES_PASSWORD": "s3cret"})
    assert url == "postgresql+psycopg://lrsearch:s3cret@postgres:5432/lrsearch"


@pytest.mark.parametrize("name", ["migrate", "api", "worker"])
def test_a_password_with_url_characters_goes_in_url_encoded(
    services: dict[str, Any], name: str
) -> None:
    password = "p@ss:w/rd?#%"
    env = {"POSTGRES_PASSWORD": password, "POSTGRES_PASSWORD_URLENCODED": quote(password, safe="")}
    url = make_url(_interpolate(_env(services[name])["LRSEARCH_STORAGE"], env))
    assert (url.password, url.host, url.database) == (password, "postgres", "lrsearch")
    assert _interpolate(_env(services["postgres"])["POSTGRES_PASSWORD"], env) == password


@pytest.mark.parametrize("name", ["postgres", "migrate", "api", "worker"])
def test_the_postgres_password_is_never_defaulted(services: dict[str, Any], name: str) -> None:
    env = _env(services[name])
    value = env["POSTGRES_PASSWORD"] if name == "postgres" else env["LRSEARCH_STORAGE"]
    for unset in ({}, {"POSTGRES_PASSWORD": ""}):
        with pytest.raises(_UnsetError, match="set POSTGRES_PASSWORD"):
            _interpolate(value, unset)


def test_api_binds_all_interfaces_and_reads_only_its_settings(services: dict[str, Any]) -> None:
    api = services["api"]
    assert api["command"][:2] == ["lrsearch", "serve"]
    assert api["command"][api["command"].index("--host") + 1] == "0.0.0.0"
    assert api["build"]["dockerfile"] == "Dockerfile.api"
    known = {f"LRSEARCH_{field.upper()}" for field in Settings.model_fields}
    assert set(_env(api)) <= known, set(_env(api)) - known


def test_worker_is_configured_by_environment_only(services: dict[str, Any]) -> None:
    worker = services["worker"]
    assert worker["command"] == ["lrsearch", "worker"]
    env = _env(worker)
    # WorkerSettings defines every variable a worker reads (its options fall back to them).
    known = _worker_option_envvars() | WORKER_PROCESS_ENV | _worker_settings_env()
    assert set(env) <= known, f"not read by the worker: {set(env) - known}"
    assert {"LRSEARCH_STORAGE", "LRSEARCH_GPUS", "LRSEARCH_HEARTBEAT_S", "LRSEARCH_GRACE_S"} <= set(
        env
    )
    assert _interpolate(env["LRSEARCH_GPUS"]) == "all"
    # Empty (not unset) turns the supervisor off, for CPU-only hosts.
    assert _interpolate(env["LRSEARCH_GPUS"], {"LRSEARCH_GPUS": ""}) == ""


def test_worker_reserves_gpus_and_scales(services: dict[str, Any]) -> None:
    worker = services["worker"]
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    assert device.get("count") == "all" or device.get("device_ids")
    # --scale worker=N needs no fixed name and no published port.
    assert "container_name" not in worker
    assert "ports" not in worker
    assert worker["build"]["dockerfile"] == "Dockerfile.worker"


def test_worker_stop_grace_outlasts_its_stop_timeout(services: dict[str, Any]) -> None:
    worker = services["worker"]
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    grace = int(str(worker["stop_grace_period"]).removesuffix("s"))
    stop_timeout = float(_interpolate(_env(worker)["LRSEARCH_STOP_TIMEOUT_S"]))
    # The supervisor waits the workers' stop timeout plus 15 s before killing.
    assert grace > stop_timeout + 15


def test_dockerfile_api_is_slim_without_torch_and_serves_on_all_interfaces() -> None:
    ins = _instructions(_dockerfile("Dockerfile.api"))
    froms = [rest for word, rest in ins if word == "FROM"]
    assert froms == ["python:3.11-slim"]
    runs = " ".join(rest for word, rest in ins if word == "RUN")
    # The base install, without the `worker` extra: no torch in the API image.
    assert "pip install . " in runs
    assert "[worker]" not in runs
    assert "download.pytorch.org" not in runs
    (cmd,) = [rest for word, rest in ins if word == "CMD"]
    assert cmd.startswith('["lrsearch", "serve"')
    assert '"0.0.0.0"' in cmd
    assert any(word == "USER" and rest != "root" for word, rest in ins)
    assert any(word == "HEALTHCHECK" and "healthz" in rest for word, rest in ins)


def test_dockerfile_worker_builds_on_a_cuda_pytorch_image() -> None:
    ins = _instructions(_dockerfile("Dockerfile.worker"))
    args = dict(rest.split("=", 1) for word, rest in ins if word == "ARG" and "=" in rest)
    assert re.fullmatch(
        r"pytorch/pytorch:[\d.]+-cuda[\d.]+-cudnn\d+-runtime", args["PYTORCH_IMAGE"]
    )
    assert [rest for word, rest in ins if word == "FROM"] == ["${PYTORCH_IMAGE}"]
    assert any(word == "RUN" and 'pip install ".[worker]"' in rest for word, rest in ins)
    assert ("CMD", '["lrsearch", "worker"]') in ins
    assert any(word == "USER" and rest != "root" for word, rest in ins)


def test_dockerignore_keeps_the_build_context_small() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "tests"} <= ignored


def test_scale_out_guide_documents_every_variable_the_stack_sets(
    services: dict[str, Any],
) -> None:
    guide = (ROOT / "docs" / "scale-out.md").read_text()
    names = {n for s in services.values() for n in _env(s) if n.startswith("LRSEARCH_")}
    missing = sorted(n for n in names if f"`{n}`" not in guide)
    assert not missing, f"docs/scale-out.md does not document {missing}"
    for step in ("SQLite", "PostgreSQL", "docker compose", "lrsearch worker --gpus all"):
        assert step in guide
