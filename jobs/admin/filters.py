"""The job list's own filters and its count, which stops at JOBS_ADMIN_COUNT_LIMIT. What each filter's
parameter selects is also what `jobs.selectors.job_selection` reads, for actions replayed in a worker
(tests/jobs/test_selection.py holds the two to the same jobs)."""
from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.core.paginator import Paginator
from django.utils.functional import cached_property

from jobs.registry import kind_names, tenant_kind_names

class BoundedCountPaginator(Paginator):
    """Counts at most JOBS_ADMIN_COUNT_LIMIT + 1 rows: a bounded index scan instead of COUNT(*) of the table."""

    limit = settings.JOBS_ADMIN_COUNT_LIMIT

    @cached_property
    def count(self) -> int:
        # Any limit + 1 matching rows will do, so the list's ORDER BY goes: with it the database has to
        # find every match and sort it (or walk the primary key past all the misses) before it stops.
        rows = self.object_list
        if hasattr(rows, "order_by"):
            rows = rows.order_by()
        return rows[: self.limit + 1].count()

    @property
    def capped(self) -> bool:
        return self.count > self.limit


class KindFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        names = kind_names() if request.user.is_superuser else tenant_kind_names()
        return [(name, name) for name in names]

    def queryset(self, request, queryset):
        return queryset.filter(kind=self.value()) if self.value() else queryset


class QueueFilter(admin.SimpleListFilter):
    title = "queue"
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [(name, name) for name in settings.RQ_QUEUES]

    def queryset(self, request, queryset):
        return queryset.filter(queue=self.value()) if self.value() else queryset


class HasErrorFilter(admin.SimpleListFilter):
    title = "error"
    parameter_name = "has_error"

    def lookups(self, request, model_admin):
        return [("yes", "Has an error"), ("no", "No error")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(last_error="")
        if self.value() == "no":
            return queryset.filter(last_error="")
        return queryset
