"""The record beside RQ's copy, on the django-rq dashboard's pages (jobs.dashboard)."""
from __future__ import annotations

from uuid import UUID

from django import template

from jobs.models import Job

register = template.Library()

_CACHE = "rq_records"


@register.simple_tag(takes_context=True)
def record_of(context, rq_job) -> Job | None:
    """The Job row an RQ job stands for, or None when it has none (it is not this system's).

    A list page asks once per row; the first call loads the records of every job on the page at once.
    """
    records = context.render_context.get(_CACHE)
    if records is None:
        listed = list(context.get("jobs") or []) + [rq_job]
        records = context.render_context[_CACHE] = _load(getattr(job, "id", None) for job in listed)
    rq_id = str(getattr(rq_job, "id", ""))
    if rq_id not in records:
        records.update(_load([rq_id]))
    return records.get(rq_id)


def _load(rq_ids) -> dict[str, Job | None]:
    rq_ids = [str(rq_id) for rq_id in rq_ids if rq_id is not None]
    uuids = {}
    for rq_id in rq_ids:
        try:
            uuids[rq_id] = UUID(rq_id)
        except ValueError:
            continue  # not a job id of this system
    found = {job.pk: job for job in Job.objects.filter(pk__in=list(uuids.values())).only("id", "status")}
    return {rq_id: found.get(uuids.get(rq_id)) for rq_id in rq_ids}
