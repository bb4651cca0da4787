"""One error shape for every status the API answers with, and the OpenAPI schema it serves."""
from __future__ import annotations

import json
import logging

import pytest
import schemathesis

from jobs import enqueue
from jobs.api.views import api
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db

UNKNOWN_JOB = "01a00000-0000-7000-8000-000000000000"


def test_it_answers_400_for_a_body_that_is_not_json(writer):
    response = writer.client.post(f"/api/v1/jobs/{UNKNOWN_JOB}/cancel", b"\xff{", content_type="application/json",
                                  HTTP_AUTHORIZATION=f"Bearer {writer.token}")
    assert_error(response, 400, "bad_request")


def test_it_answers_401_without_a_token(anonymous):
    assert anonymous.get("/api/v1/jobs")["WWW-Authenticate"].startswith("Bearer")
    assert_error(anonymous.get("/api/v1/jobs"), 401, "unauthorized")


def test_it_answers_403_for_a_write_with_a_read_token(reader):
    assert_error(reader.post("/api/v1/jobs", {"kind": "diagnostics.ping"}), 403, "insufficient_scope")


def test_it_answers_404_for_an_unknown_job(writer):
    error = assert_error(writer.get(f"/api/v1/jobs/{UNKNOWN_JOB}"), 404, "not_found")
    assert UNKNOWN_JOB in error["message"]


@pytest.mark.parametrize("path", ["/api/", "/api/v1/", "/api/v1/nothing", "/api/v1/jobs/", "/api/v2/jobs",
                                  "/api/v1/jobs/123/retry", "/api/v1/queues/default"])
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_it_answers_404_in_json_for_any_unknown_address_under_api(writer, path, method):
    assert_error(writer.request(method, path), 404, "not_found")


def test_it_answers_405_with_allow_for_a_method_an_endpoint_does_not_take(writer, anonymous):
    for caller in (writer, anonymous):
        response = caller.request("DELETE", "/api/v1/jobs")
        assert_error(response, 405, "method_not_allowed")
        assert set(response["Allow"].replace(" ", "").split(",")) == {"GET", "POST"}
    response = writer.request("PUT", f"/api/v1/jobs/{UNKNOWN_JOB}/retry")
    assert_error(response, 405)
    assert response["Allow"] == "POST"


def test_it_answers_409_for_an_action_the_jobs_state_does_not_allow(writer, acme):
    job = enqueue("diagnostics.ping", tenant=acme, payload={})
    assert_error(writer.post(f"/api/v1/jobs/{job.pk}/retry"), 409, "job_state")


def test_it_answers_413_for_a_body_over_the_upload_limit(writer, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    error = assert_error(writer.post("/api/v1/jobs", {"kind": "diagnostics.ping", "idempotency_key": "k" * 2000}),
                         413, "too_large")
    assert "1000 bytes" in error["message"]


def test_it_answers_422_naming_the_field(writer):
    assert_error(writer.get("/api/v1/jobs", {"has_error": "perhaps"}), 422, "validation_error", field="has_error")


def test_it_answers_429_over_the_rate_limit(writer, settings):
    settings.API_RATE_LIMIT = 1
    writer.get("/api/v1/token")
    assert_error(writer.get("/api/v1/token"), 429, "rate_limited")


def test_it_answers_500_in_json_without_details_and_logs_the_error(writer, monkeypatch, caplog):
    def broken(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr("jobs.api.selectors.queue_overview", broken)
    monkeypatch.setattr(logging.getLogger("jobs"), "propagate", True)  # to caplog's handler
    response = writer.get("/api/v1/queues")
    error = assert_error(response, 500, "internal_error")
    assert "secret internals" not in response.content.decode()
    assert response["X-Request-ID"] in error["message"]
    assert any("secret internals" in str(record.exc_info[1]) for record in caplog.records if record.exc_info)


# --- the schema ------------------------------------------------------------------------------------


def test_it_serves_its_openapi_schema_without_a_token(anonymous):
    response = anonymous.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
    served = response.json()
    assert served == json.loads(json.dumps(api.get_openapi_schema()))
    assert served["openapi"].startswith("3.1")
    assert set(served["paths"]) == {"/api/v1/jobs", "/api/v1/jobs/{job_id}", "/api/v1/jobs/{job_id}/retry",
                                    "/api/v1/jobs/{job_id}/cancel", "/api/v1/jobs/{job_id}/stop", "/api/v1/jobs/bulk",
                                    "/api/v1/tenant/pause", "/api/v1/tenant/resume", "/api/v1/queues",
                                    "/api/v1/jobs/clean", "/api/v1/queues/{name}/empty", "/api/v1/batches",
                                    "/api/v1/batches/{batch_id}", "/api/v1/chains",
                                    "/api/v1/kinds", "/api/v1/token", "/api/v1/tenant/stats", "/api/v1/schedules",
                                    "/api/v1/schedules/{schedule_id}", "/api/v1/schedules/{schedule_id}/pause",
                                    "/api/v1/schedules/{schedule_id}/resume", "/api/v1/schedules/{schedule_id}/run",
                                    "/api/v1/platform/queues", "/api/v1/platform/limits", "/api/v1/platform/tenants", "/api/v1/platform/stats",
                                    "/api/v1/queues/{name}/pause", "/api/v1/queues/{name}/resume"}
    assert served["components"]["securitySchemes"] == {"TokenAuth": {"type": "http", "scheme": "bearer"}}


def test_it_serves_a_schema_valid_against_the_openapi_specification(anonymous):
    loaded = schemathesis.openapi.from_dict(anonymous.get("/api/v1/openapi.json").json())
    loaded.validate()  # raises on a schema that breaks the OpenAPI 3.1 meta-schema
    # get and post of /jobs and /schedules; get and delete of a job; get, patch and delete of a schedule; one each else
    assert len(list(loaded.get_all_operations())) == 34


def test_it_documents_each_kinds_payload_and_every_error_response(anonymous):
    served = anonymous.get("/api/v1/openapi.json").json()
    enqueue_body = served["paths"]["/api/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    # One variant per public kind (the suite has a public Django task too), told apart by `kind`.
    mapping = enqueue_body["discriminator"]["mapping"]
    variants = {kind: served["components"]["schemas"][ref.rsplit("/", 1)[1]] for kind, ref in mapping.items()}
    assert variants["diagnostics.ping"]["properties"]["kind"]["const"] == "diagnostics.ping"
    assert "not" not in variants["diagnostics.ping"]  # Swagger UI shows a body with `not` as type "never"
    assert set(variants["diagnostics.ping"]["properties"]["payload"]["properties"]) == {"seconds", "steps",
                                                                                       "fail_times"}
    task = variants["tests.jobs.django_tasks.public_cleanup"]
    assert set(task["properties"]["payload"]["properties"]) == {"args", "kwargs"}
    for path, operations in served["paths"].items():
        for method, operation in operations.items():
            documented = set(operation["responses"])
            assert {"401", "403", "422", "429"} <= documented, (method, path)
            if "{job_id}" in path or "{schedule_id}" in path or "{name}" in path:
                assert "404" in documented, (method, path)
            for status in documented - {"200", "201", "202", "204"}:
                schema = operation["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (method, path, status)


def test_it_serves_the_swagger_page_from_its_own_static_files(anonymous):
    response = anonymous.get("/api/v1/docs")
    assert response.status_code == 200
    page = response.content.decode()
    assert "/api/v1/openapi.json" in page and "/static/ninja/swagger-ui-bundle.js" in page
    assert "cdn." not in page
