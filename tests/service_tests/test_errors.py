"""Errors: problem+json everywhere, 413 for big bodies, 422 for non-JSON, 500s with an id."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from lrsearch.service import Settings, create_app
from tests.service_tests.conftest import Api, TestClient

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "request_id"}


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        chunk = b" " * min(size, total - sent)
        sent += len(chunk)
        yield chunk


def test_body_over_the_limit_by_content_length_is_413(api: Api) -> None:
    body = b'{"name": "x", "pad": "' + b"a" * (1 << 20) + b'"}'
    response = api.post("/studies", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:lrsearch:problem:body-too-large"


def test_streamed_body_over_the_limit_is_413(api: Api) -> None:
    # No Content-Length: chunked; the bytes are counted as they are read.
    for path in ("/studies", "/keys"):
        response = api.client.post(
            f"/api/v1{path}",
            content=_chunks(2 << 20),
            headers={**api.headers("admin"), "Content-Type": "application/json"},
        )
        assert "content-length" not in response.request.headers
        assert response.status_code == 413, path
        assert response.json()["status"] == 413


def test_body_just_under_the_limit_is_read(tmp_path: Path) -> None:
    settings = Settings(
        storage=f"sqlite:///{tmp_path / 'small.db'}", auth_disabled=True, max_body_bytes=200
    )
    with TestClient(create_app(settings)) as client:
        ok = client.post("/api/v1/studies", content=b"{" + b" " * 150 + b"}")
        assert ok.status_code == 422  # read and validated, not refused
        big = client.post("/api/v1/studies", content=b"{" + b" " * 250 + b"}")
        assert big.status_code == 413


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"name: x\ntask: synthetic\n", "application/yaml"),
        (b"hello", "text/plain"),
        (b"{not json", "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b'"a string"', "application/json"),
        (b"null", "application/json"),
        (b"", "application/json"),
    ],
    ids=["yaml", "text", "broken-json", "array", "string", "null", "empty"],
)
def test_non_json_or_non_object_body_is_422(api: Api, content: bytes, content_type: str) -> None:
    response = api.post("/studies", content=content, headers={"Content-Type": content_type})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert set(problem) >= PROBLEM_KEYS
    assert problem["errors"]
    assert problem["errors"][0]["loc"][0] == "body"


def test_every_response_carries_a_request_id(api: Api) -> None:
    ids = set()
    for response in (
        api.get("/studies"),
        api.get("/studies/missing"),
        api.client.get("/healthz"),
        api.client.get("/api/v1/no-such-route"),
    ):
        ids.add(response.headers["x-request-id"])
    assert len(ids) == 4
    missing = api.get("/studies/missing")
    assert missing.json()["request_id"] == missing.headers["x-request-id"]
    # A well-formed id from the client is kept, so logs can be joined up.
    given = api.get("/studies", headers={"X-Request-ID": "client-req-12345"})
    assert given.headers["x-request-id"] == "client-req-12345"
    junk = api.client.get("/healthz", headers={"X-Request-ID": "<script>"})
    assert junk.headers["x-request-id"] != "<script>"


def test_unknown_route_and_method_are_problems(api: Api) -> None:
    missing = api.get("/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    wrong = api.client.put("/api/v1/studies", headers=api.headers())
    assert wrong.status_code == 405
    assert wrong.json()["status"] == 405


def test_an_unexpected_error_is_a_500_with_the_request_id_and_no_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Settings(storage=f"sqlite:///{tmp_path / 'boom.db'}", auth_disabled=True))

    def boom() -> None:
        raise RuntimeError("secret internals: /etc/passwd")

    # A real route on the real app that fails the way a bug would.
    app.add_api_route("/boom", boom)
    with caplog.at_level(logging.ERROR), TestClient(app) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    request_id = response.headers["x-request-id"]
    assert problem["request_id"] == request_id
    assert problem["type"] == "urn:lrsearch:problem:internal"
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged
    assert logged[0].exc_info is not None
