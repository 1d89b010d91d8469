"""The OpenAPI document: problem+json error responses and the study-definition body.

Routes list the error statuses they can answer with :func:`problems`; the
document is then rewritten once so that every 4xx/5xx response is
``application/problem+json`` with the :class:`~service.schemas.ProblemDetails`
schema, and the create-study body is the full study definition with an example
(the route itself takes raw JSON, so that :func:`search_space.parse_definition`
reports every problem with its path).
"""

from __future__ import annotations

import http
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from lrsearch.search_space import StudyDefinition
from lrsearch.service.errors import PROBLEM_MEDIA_TYPE
from lrsearch.service.schemas import EXAMPLE_DEFINITION, ProblemDetails

API_PREFIX = "/api/v1"
CREATE_STUDY_OPERATION = "create_study"
_REF = "#/components/schemas/{model}"


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries documenting problem+json errors with these statuses."""
    return {
        status: {"model": ProblemDetails, "description": http.HTTPStatus(status).phrase}
        for status in statuses
    }


def _problem_content() -> dict[str, Any]:
    return {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": _REF.format(model="ProblemDetails")}}}


def _definition_body(components: dict[str, Any]) -> dict[str, Any]:
    schema = StudyDefinition.model_json_schema(ref_template=_REF)
    for name, sub in schema.pop("$defs", {}).items():
        components.setdefault(name, sub)
    components.setdefault("StudyDefinition", schema)
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": _REF.format(model="StudyDefinition")},
                "examples": {
                    "digits": {"summary": "Six schedules on digits", "value": EXAMPLE_DEFINITION},
                    "minimal": {
                        "summary": "Only the required fields",
                        "value": {"name": "quick-search", "task": "synthetic"},
                    },
                },
            }
        },
    }


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, generated once and then cached on the app."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                if status[0] in "45":
                    response["content"] = _problem_content()
            if operation.get("operationId") == CREATE_STUDY_OPERATION:
                operation["requestBody"] = _definition_body(components)
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    app.openapi_schema = doc
    return doc
