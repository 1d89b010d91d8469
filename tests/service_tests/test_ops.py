"""Health check, Prometheus metrics and the API documentation."""

from __future__ import annotations

import re
from collections.abc import Callable

from lrsearch import service
from tests.service_tests.conftest import Api
from tests.service_tests.helpers import DriveTrials


def test_healthz_checks_the_database_without_a_key(api: Api) -> None:
    for path in ("/healthz", "/api/v1/healthz"):
        response = api.client.get(path)
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "database": "ok"}


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name}{labels} in metrics")


def test_metrics_count_requests_by_route_template_and_trials_by_state(
    api: Api, drive: Callable[..., DriveTrials]
) -> None:
    name = api.create_study()["name"]
    drive(name, outcomes=["COMPLETE", "PRUNED"])
    api.get(f"/studies/{name}")
    api.get("/studies/missing-one")
    response = api.client.get("/metrics", headers=api.headers("read"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    for metric in (
        "lrsearch_http_requests_total",
        "lrsearch_http_request_duration_seconds_bucket",
        "lrsearch_http_request_duration_seconds_count",
        "lrsearch_trials",
        "lrsearch_storage_up",
    ):
        assert f"\n{metric}" in text, metric
    template = "/api/v1/studies/{name}"
    assert _sample(text, "lrsearch_http_requests_total", route=template, status="200") >= 1
    assert _sample(text, "lrsearch_http_requests_total", route=template, status="404") >= 1
    assert _sample(text, "lrsearch_http_request_duration_seconds_count", route=template) >= 2
    # Studies' names never become labels: the label set stays bounded.
    assert name not in text
    assert _sample(text, "lrsearch_trials", state="COMPLETE") >= 1
    assert _sample(text, "lrsearch_trials", state="PRUNED") >= 1
    assert _sample(text, "lrsearch_storage_up") == 1.0
    assert api.get("/metrics").status_code == 200


def test_openapi_documents_the_api_with_an_example_definition(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    paths = doc["paths"]
    expected = {
        ("post", "/api/v1/studies"),
        ("get", "/api/v1/studies"),
        ("get", "/api/v1/studies/{name}"),
        ("post", "/api/v1/studies/{name}/pause"),
        ("post", "/api/v1/studies/{name}/resume"),
        ("post", "/api/v1/studies/{name}/cancel"),
        ("post", "/api/v1/studies/{name}/trials"),
        ("get", "/api/v1/studies/{name}/trials"),
        ("get", "/api/v1/studies/{name}/trials/{number}"),
        ("get", "/api/v1/studies/{name}/best"),
        ("get", "/api/v1/studies/{name}/schedules"),
        ("get", "/api/v1/studies/{name}/importance"),
        ("get", "/api/v1/healthz"),
        ("get", "/api/v1/metrics"),
        ("delete", "/api/v1/studies/{name}"),
    }
    assert expected <= {(m, p) for p, ops in paths.items() for m in ops}
    create = paths["/api/v1/studies"]["post"]
    body = create["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/StudyDefinition"}
    assert body["examples"]["digits"]["value"]["search_space"]["schedules"]
    assert "StudyDefinition" in doc["components"]["schemas"]
    for status in ("401", "409", "413", "422"):
        content = create["responses"][status]["content"]
        assert list(content) == ["application/problem+json"]
    assert api.client.get("/docs").status_code == 200


def test_the_package_exports_its_public_surface() -> None:
    assert service.__all__ == ["API_PREFIX", "Settings", "create_app", "registered_tasks"]
    assert {"synthetic", "digits-mlp"} <= service.registered_tasks()
