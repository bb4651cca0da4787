"""Schema-driven fuzzing: schemathesis generates requests from the API's own OpenAPI schema (valid and
invalid ones, wrong methods, missing credentials) and sends them to the live test server with a
read-write token. No request may get a 5xx, and every response must match the schema: a documented
status, content type, headers and body."""
from __future__ import annotations

import json
import re
from datetime import datetime
from uuid import UUID

import pytest
import schemathesis
from django.utils import timezone
from hypothesis import HealthCheck, given, settings

from jobs import enqueue
from jobs.api.models import Scope
from jobs.api.views import api
from jobs.models import Attempt, Job, Outcome, Status
from jobs.schedules.models import Schedule
from jobs.services import MAX_DELAY

pytestmark = pytest.mark.django_db(transaction=True)  # the live server reads what the test wrote

# A schedule's rules beyond its JSON Schema; refused naming the field.
UNSTATED = {"cron", "timezone", "end_at", "name"}
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# The schema the server publishes (test_schema.py checks that /api/v1/openapi.json serves exactly it).
schema = schemathesis.openapi.from_dict(api.get_openapi_schema())


@pytest.fixture
def story(make_token, acme, globex, root, settings) -> dict:
    """A read-write token of acme's, and jobs for it to find: a failed one (retryable, with an attempt),
    a queued one (cancellable), and globex's (never to be found); a schedule of acme's and one of globex's;
    and a read-write platform token for the platform's operations."""
    settings.API_RATE_LIMIT = 0  # the fuzzer sends hundreds of requests a minute
    failed = enqueue("diagnostics.ping", tenant=acme, payload={"fail_times": 3})
    Job.objects.filter(pk=failed.pk).update(status=Status.FAILED, attempts=1, last_error="PingFailure: on purpose",
                                            finished_at=timezone.now())
    Attempt.objects.create(job=failed, number=1, outcome=Outcome.FAILED, ended_at=timezone.now(),
                           error_type="PingFailure", error_message="on purpose")
    queued = enqueue("diagnostics.ping", tenant=acme, payload={"steps": 2})
    theirs = enqueue("diagnostics.ping", tenant=globex, payload={})
    ours = Schedule.objects.create(tenant=acme, name="nightly", kind="diagnostics.ping", cron="0 3 * * *")
    theirs_schedule = Schedule.objects.create(tenant=globex, name="nightly", kind="diagnostics.ping", cron="0 3 * * *")
    return {"token": make_token(scope=Scope.READ_WRITE)[1], "ids": [str(failed.pk), str(queued.pk)],
            "theirs": str(theirs.pk), "schedule": ours.pk, "their_schedule": theirs_schedule.pk,
            "platform": make_token(platform=True, user=root, name="runbooks")[1]}


def aim_at_real_jobs(case, story: dict) -> None:
    """Generated ids almost never exist: point about half of the well-formed ones at acme's jobs, so
    retry, cancel and get also run against real rows (and one in eight at globex's, which must 404)."""
    schedule = (case.path_parameters or {}).get("schedule_id")
    if isinstance(schedule, int) and schedule % 4 < 2:
        case.path_parameters["schedule_id"] = story["schedule"] if schedule % 4 == 0 else story["their_schedule"]
    value = (case.path_parameters or {}).get("job_id")
    if not isinstance(value, str) or not UUID_TEXT.fullmatch(value):
        return  # an ill-formed id is the point of that case
    pick = UUID(value).int % 8
    if pick < 4:
        case.path_parameters["job_id"] = story["ids"][pick % 2]
    elif pick == 4:
        case.path_parameters["job_id"] = story["theirs"]


def beyond_ten_years(body) -> bool:
    """A body whose run_at is further away than the ten years enqueue accepts."""
    try:
        run_at = datetime.fromisoformat(body["run_at"])
    except (TypeError, KeyError, ValueError):
        return False
    return run_at.tzinfo is not None and run_at - timezone.now() > MAX_DELAY


# One test per operation, each with its own node id (schemathesis' own parametrization gives them all
# one, which a parallel run's scheduler cannot tell apart).
OPERATIONS = [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_it_answers_every_generated_request_by_its_schema(operation, live_server, story):
    @given(case=operation.as_strategy())
    @settings(max_examples=20, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                     HealthCheck.function_scoped_fixture])
    def answers_by_its_schema(case) -> None:
        aim_at_real_jobs(case, story)
        bearer = f"Bearer {story['platform' if 'platform' in (operation.tags or []) else 'token']}"
        if isinstance(case.body, dict) and case.body.get("run_at") is not None and case.body.get("delay") is not None:
            # Valid by the schema (its descriptions say they exclude each other), refused naming the field.
            response = case.call(base_url=live_server.url, headers={"Authorization": bearer})
            assert response.status_code == 422 and response.json()["error"]["field"] in ("run_at", "delay"), (
                response.text)
            return
        if isinstance(case.body, dict | list) and "\\u0000" in json.dumps(case.body):
            # Valid by the schema (it cannot forbid NUL in every nested key of a free-form payload), refused
            # naming where: PostgreSQL cannot store U+0000 (or 404 first, for an id that is not the tenant's).
            response = case.call(base_url=live_server.url, headers={"Authorization": bearer})
            if response.status_code == 404 and case.path_parameters:
                return
            assert response.status_code == 422 and response.json()["error"]["field"], response.text
            return
        if beyond_ten_years(case.body):
            # Valid by the schema (JSON Schema cannot bound a date-time), refused as its text says.
            response = case.call(base_url=live_server.url, headers={"Authorization": bearer})
            assert response.status_code == 422 and response.json()["error"]["field"] == "run_at", response.text
            return
        if "schedules" in (operation.tags or []) and case.method in ("POST", "PATCH"):
            response = case.call(base_url=live_server.url, headers={"Authorization": bearer})
            field = response.json()["error"].get("field") or "" if response.status_code == 422 else None
            if field in UNSTATED or (field or "").startswith("payload") and case.method == "PATCH":
                # Valid by the schema, which cannot say what cron text or time zone is valid, that the end
                # follows the start, that a name is free, or (in a change) which kind the payload must fit.
                return
            case.validate_response(response)
        else:
            response = case.call_and_validate(base_url=live_server.url, headers={"Authorization": bearer})
        if response.request.headers.get("Authorization") == bearer:
            # The token is valid and read-write: nothing sent with it is refused for who sent it.
            assert response.status_code not in (401, 403, 429), response.text
        if case.path_parameters and case.path_parameters.get("job_id") == story["theirs"]:
            assert response.status_code not in (200, 201, 409), response.text  # globex's job: never found
        if case.path_parameters and case.path_parameters.get("schedule_id") == story["their_schedule"]:
            assert response.status_code not in (200, 201, 204, 409), response.text  # nor its schedule

    answers_by_its_schema()
