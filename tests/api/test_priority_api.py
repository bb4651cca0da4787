"""The API's enqueue takes a priority (1 to 10) and every job it returns says its own."""
from __future__ import annotations

from jobs.models import Job


def test_a_job_enqueued_with_a_priority_keeps_it_and_a_wrong_one_is_refused_naming_it(writer):
    made = writer.post("/api/v1/jobs", {"kind": "diagnostics.ping", "payload": {}, "priority": 9})
    assert made.status_code == 201 and made.json()["priority"] == 9
    assert Job.objects.get(pk=made.json()["id"]).priority == 9
    assert writer.post("/api/v1/jobs", {"kind": "diagnostics.ping"}).json()["priority"] == 5
    refused = writer.post("/api/v1/jobs", {"kind": "diagnostics.ping", "priority": 11})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "priority"
