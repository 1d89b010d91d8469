"""The API against its own OpenAPI document: schemathesis-generated requests, and real data.

Schemathesis sends a bounded number of generated requests (valid, valid for
the seeded study, and invalid) to every operation of the document, on SQLite
and on PostgreSQL, and checks that none gets a 5xx and that every response
matches the status codes, media types and schemas the document declares. The
only request left out is revoking the caller's own key (every later request
would be a 401); deleting a study targets a study seeded to be deleted.
A second test reads a seeded study through the GETs and validates those
(200) responses against the document as well.

The operations are parametrized by hand rather than with
``schemathesis.pytest.from_fixture``, which does not work with pytest 9.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from lrsearch import storage
from lrsearch.search_space import parse_definition
from lrsearch.service import Settings, create_app
from tests.service_tests.conftest import TestClient, unique_name
from tests.service_tests.helpers import drive_trials
from tests.storage_tests.migration_helpers import fresh_database

# Bounded so that both databases together stay well under a minute.
MAX_EXAMPLES = 6
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclass(frozen=True)
class Seeded:
    url: str
    key: str
    key_id: str
    study: str
    disposable: str  # for DELETE /studies/{name}


def _seed_study(backend: storage.Backend, tenant: str, *, trials: bool) -> storage.StudyRecord:
    definition = parse_definition(
        {
            "name": unique_name(),
            "task": "synthetic",
            "budget": {"n_trials": 8, "max_epochs": 3},
            "sampler": {"type": "random", "seed": 3},
        }
    )
    record = storage.create_study(backend, definition, tenant=tenant)
    if trials:
        drive_trials(backend, record, outcomes=["COMPLETE", "PRUNED", "FAIL", "COMPLETE"] * 2)
    return record


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Seeded]:
    """A storage with an admin key of a new tenant, a study with trials, and one to delete.

    A database of its own: the app's stale-trial sweep must not reach other
    tests' running trials while this module runs.
    """
    with fresh_database(request.param, tmp_path_factory.mktemp("conformance")) as url:
        backend = storage.open_backend(url)
        try:
            tenant = unique_name("tenant")
            key, plain = storage.create_key(backend, scope="admin", tenant=tenant)
            study = _seed_study(backend, tenant, trials=True)
            disposable = _seed_study(backend, tenant, trials=False)
        finally:
            backend.dispose()
        yield Seeded(url, plain, key.key_id, study.name, disposable.name)


def _cases() -> list[tuple[str, str, str]]:
    """(method, path, mode) for every operation; negative only where there is input to break."""
    # The document only: nothing is connected until the app starts.
    document = create_app(Settings(storage="sqlite://")).openapi()
    cases = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            modes = ["positive"]
            if "{name}" in path:
                modes.append("positive-seeded-study")
            if operation.get("parameters") or operation.get("requestBody"):
                modes.append("negative")
            cases += [(method.upper(), path, mode) for mode in modes]
    return cases


@pytest.fixture(scope="module")
def api_schema(seeded: Seeded) -> Iterator[Any]:
    app = create_app(Settings(storage=seeded.url))
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    # Schemathesis started the app's lifespan on the first call; stop it (closes the storage).
    schemathesis_asgi.shutdown_lifespans()


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path", "mode"), _cases(), ids=lambda v: str(v))
def test_generated_requests_get_no_5xx_and_match_the_schema(
    api_schema: Any, seeded: Seeded, method: str, path: str, mode: str
) -> None:
    operation = api_schema[path][method]
    fixed: dict[str, Any] = {}
    if mode == "positive-seeded-study":
        study = seeded.disposable if method == "DELETE" else seeded.study
        fixed["path_parameters"] = {"name": study}
    generation = GenerationMode.NEGATIVE if mode == "negative" else GenerationMode.POSITIVE
    strategy = operation.as_strategy(generation, **fixed).filter(
        lambda case: (case.path_parameters or {}).get("key_id") != seeded.key_id
    )
    headers = {"Authorization": f"Bearer {seeded.key}"}

    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    check()


def test_every_operation_is_covered() -> None:
    operations = {(method, path) for method, path, _ in _cases()}
    assert ("DELETE", "/api/v1/studies/{name}") in operations
    assert ("DELETE", "/api/v1/keys/{key_id}") in operations
    assert len(operations) == sum(
        len(ops) for ops in create_app(Settings(storage="sqlite://")).openapi()["paths"].values()
    )


def test_real_responses_match_the_schema(seeded: Seeded) -> None:
    app = create_app(Settings(storage=seeded.url))
    document = schemathesis.openapi.from_dict(app.openapi())
    headers = {"Authorization": f"Bearer {seeded.key}"}
    name = seeded.study
    fresh = unique_name()
    requests = [
        ("GET", "/api/v1/studies", "/api/v1/studies"),
        ("GET", "/api/v1/studies/{name}", f"/api/v1/studies/{name}"),
        ("GET", "/api/v1/studies/{name}/trials", f"/api/v1/studies/{name}/trials?limit=2"),
        ("GET", "/api/v1/studies/{name}/trials/{number}", f"/api/v1/studies/{name}/trials/0"),
        ("GET", "/api/v1/studies/{name}/trials/{number}", f"/api/v1/studies/{name}/trials/2"),
        ("GET", "/api/v1/studies/{name}/best", f"/api/v1/studies/{name}/best"),
        ("GET", "/api/v1/studies/{name}/schedules", f"/api/v1/studies/{name}/schedules"),
        ("GET", "/api/v1/studies/{name}/importance", f"/api/v1/studies/{name}/importance"),
        ("POST", "/api/v1/studies/{name}/pause", f"/api/v1/studies/{name}/pause"),
        # Again: a 409 problem, validated like the rest.
        ("POST", "/api/v1/studies/{name}/pause", f"/api/v1/studies/{name}/pause"),
        ("POST", "/api/v1/studies/{name}/resume", f"/api/v1/studies/{name}/resume"),
        ("GET", "/api/v1/keys", "/api/v1/keys"),
        ("GET", "/api/v1/healthz", "/api/v1/healthz"),
        ("GET", "/api/v1/metrics", "/api/v1/metrics"),
        # The caller's own key, its tenant's last admin key: a 409 problem.
        ("DELETE", "/api/v1/keys/{key_id}", f"/api/v1/keys/{seeded.key_id}"),
        # 204, then a 404 problem.
        ("DELETE", "/api/v1/studies/{name}", f"/api/v1/studies/{fresh}"),
        ("DELETE", "/api/v1/studies/{name}", f"/api/v1/studies/{fresh}"),
    ]
    with TestClient(app) as client:
        created = client.post(
            "/api/v1/studies", json={"name": fresh, "task": "synthetic"}, headers=headers
        )
        assert created.status_code == 201
        for method, template, url in requests:
            response = client.request(method, url, headers=headers)
            assert response.status_code < 500, (url, response.text)
            document[template][method].validate_response(response)
