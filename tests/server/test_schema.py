"""The OpenAPI schema tells the truth (Schemathesis): every operation of the API, called in-process with an
admin's token on SQLite and PostgreSQL with generated input, answers without a server error, with a status
code the schema documents and a body that matches the schema's model for it."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from .test_api import randomize, register

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Path parameters that reach a registered, randomized patient, so that generated bodies get past the lookups.
KNOWN = {"trial": "amass-2", "patient": "P1", "visit": "d90"}
RUN = settings(max_examples=12, deadline=None, derandomize=True, database=None,
               phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))


def _strategies(operation):
    """Everything generated; then the known trial and patient with valid (positive) and invalid (negative)
    input."""
    known = {k: v for k, v in KNOWN.items() if "{" + k + "}" in operation.path} or None
    yield "generated", operation.as_strategy()
    if known:
        yield "known ids", operation.as_strategy(path_parameters=known)
    if known or operation.body or operation.method.upper() != "GET":
        yield "negative", operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=known)


def test_every_operation_keeps_to_its_schema(platform):
    assert register(platform).status_code == 201
    assert randomize(platform).status_code == 201
    assert register(platform, code="P2").status_code == 201
    # (Schemathesis's own pytest loader for a fixture's schema does not run under pytest 9, so the
    # operations are driven here with its strategies, one Hypothesis run each.)
    schema = schemathesis.openapi.from_asgi("/openapi.json", platform.client.app)
    headers = platform.headers("admin")
    failures, operations = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for kind, strategy in _strategies(operation):
            @RUN
            @given(case=strategy)
            def run(case):
                case.call_and_validate(headers=headers, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                assert kind == "negative", f"{operation.method.upper()} {operation.path}: no {kind} input"
            except (Exception, BaseExceptionGroup) as exc:  # every operation is tried; all failures are reported
                failures.append(f"{operation.method.upper()} {operation.path} ({kind}): {exc}")
    assert operations >= 17
    assert not failures, "\n\n".join(failures)


def test_the_schema_documents_the_idempotency_key_and_the_error_body(platform):
    document = platform.client.get("/openapi.json").json()
    operation = document["paths"]["/api/v1/trials/{trial}/patients/{patient}/randomization"]["post"]
    key = next(p for p in operation["parameters"] if p["name"] == "Idempotency-Key")
    assert key["in"] == "header" and key["required"] is True
    for status in ("400", "401", "403", "404", "409", "413", "422", "429"):
        assert operation["responses"][status]["content"]["application/json"]["schema"] == \
            {"$ref": "#/components/schemas/ErrorBody"}, status
    error = document["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["detail"] and "errors" in error["properties"]
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    # The behaviour is the documented one: no key, or a blank one, is a 422 naming the header.
    register(platform)
    for headers in ({}, {"Idempotency-Key": " "}):
        response = platform.call("POST", "/trials/amass-2/patients/P1/randomization", headers=headers)
        assert response.status_code == 422 and response.json()["errors"][0]["field"] == "Idempotency-Key"
