"""Staff pages for jobs in the Django admin. Everything a user sees goes through the tenant-scoped bases
(`tenants.scoped_admin`) or the selectors, scoped the same way; every write goes through `jobs.staff`,
which checks the user's role per tenant and records an AuditEvent. Lists never count the whole table.

- `html`: the status badge, progress bar and attempts as every list and page renders them;
- `filters`: the job list's filters and its bounded count;
- `jobs`: the job list and a job's page, actions, live refresh;
- `queues`: the queues and failure triage pages (the job admin's own), with the throughput chart;
- `batches`: batches and chains;
- `audit`: the audit trail;
- `retention`: a tenant's retention by job kind.
"""
from jobs.admin import audit, batches, jobs, retention  # noqa: F401  (each registers its ModelAdmin)
