"""The staff admin at scale: a million jobs over 20 tenants in PostgreSQL, each admin page timed in process.

    ./run bench admin                      # loads once into tj_bench_admin, then times every page
    ./run bench admin --rows 200000 --reload --reps 9

The data is loaded with COPY and kept: a later run with the same --rows reuses it (--reload loads it
again). Pages are requested through Django's test Client in this process with DEBUG off, so the times
are server side: middleware, queries and template rendering, no network and no browser. Every query
slower than --explain-ms is shown with its EXPLAIN (ANALYZE, BUFFERS) plan.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from common import RedisServer, setup_database, setup_django

DATABASE = "tj_bench_admin"
BUDGET_MS = 300.0
TENANTS = 20
DAYS = 30
SYSTEM_SHARE = 0.01     # jobs without a tenant
TENANT_SKEW = 1.5       # tenant k gets a share ~ 1/k**skew: one big tenant, a long tail of small ones
FAILED_SHARE = 0.025    # of finished jobs
CANCELLED_SHARE = 0.005
UNFINISHED_SHARE = 0.003  # a few thousand at a million rows, all among the newest rows
SEED = 20_260_101

COLUMNS = (
    "id", "tenant_id", "kind", "queue", "payload", "status", "progress", "progress_message", "attempts",
    "max_attempts", "timeout", "run_at", "created_at", "updated_at", "enqueued_at", "started_at", "finished_at",
    "result", "last_error", "error_fingerprint", "source", "next_trigger",
)


# --- what the jobs look like -------------------------------------------------------------------------

@dataclass(frozen=True)
class KindSpec:
    name: str
    queue: str
    weight: float
    max_attempts: int
    payload: Callable[[random.Random], dict]


KINDS = [
    KindSpec("email.send", "high", 24, 5, lambda r: {"to": f"user{r.randrange(10**6)}@example.com",
                                                     "template": r.choice(["welcome", "receipt", "reset"])}),
    KindSpec("webhooks.deliver", "high", 18, 8, lambda r: {"endpoint": r.randrange(5000), "event": "order.paid"}),
    KindSpec("billing.charge", "critical", 6, 3, lambda r: {"invoice": r.randrange(10**7), "cents": r.randrange(10**5)}),
    KindSpec("billing.invoice_pdf", "default", 6, 3, lambda r: {"invoice": r.randrange(10**7)}),
    KindSpec("media.thumbnail", "default", 12, 3, lambda r: {"asset": r.randrange(10**8), "sizes": [64, 256]}),
    KindSpec("media.transcode", "low", 3, 2, lambda r: {"asset": r.randrange(10**8), "preset": "720p"}),
    KindSpec("sync.crm_contacts", "default", 8, 5, lambda r: {"since": r.randrange(10**9)}),
    KindSpec("sync.inventory", "default", 7, 5, lambda r: {"warehouse": r.randrange(40)}),
    KindSpec("reports.export_csv", "low", 3, 1, lambda r: {"report": r.randrange(10**5), "format": "csv"}),
    KindSpec("reports.monthly", "low", 1, 1, lambda r: {"month": f"2026-{r.randrange(1, 13):02d}"}),
    KindSpec("search.reindex", "low", 8, 2, lambda r: {"model": "product", "pk": r.randrange(10**7)}),
    KindSpec("notifications.push", "high", 4, 3, lambda r: {"device": r.randrange(10**7), "badge": r.randrange(9)}),
]
KIND_BY_NAME = {kind.name: kind for kind in KINDS}


@dataclass(frozen=True)
class FailureSpec:
    """One failure group: the message varies only where jobs.models.normalise_error blanks it out."""

    kind: str
    error_type: str
    weight: float
    message: Callable[[random.Random], str]


FAILURES = [
    FailureSpec("webhooks.deliver", "HTTPError", 30,
                lambda r: f"POST https://hooks.example.com/{r.randrange(10**6)} returned 503"),
    FailureSpec("email.send", "SMTPRecipientsRefused", 20,
                lambda r: f"recipient 'user{r.randrange(10**6)}@example.com' refused: 550 mailbox unavailable"),
    FailureSpec("sync.crm_contacts", "TimeoutError", 15,
                lambda r: f"CRM API did not answer within {r.choice([10, 30, 60])} seconds"),
    FailureSpec("billing.charge", "CardDeclined", 10,
                lambda r: f"card declined for customer {r.randrange(10**6)}: insufficient funds"),
    FailureSpec("sync.inventory", "IntegrityError", 8,
                lambda r: f'duplicate key value violates unique constraint "inventory_sku" (sku {r.randrange(10**6)})'),
    FailureSpec("media.transcode", "CalledProcessError", 6,
                lambda r: f"Command 'ffmpeg' returned non-zero exit status {r.choice([1, 137])}"),
    FailureSpec("reports.export_csv", "MemoryError", 3,
                lambda r: f"export of {r.randrange(10**6, 10**7)} rows exceeded the worker's memory"),
    FailureSpec("billing.invoice_pdf", "KeyError", 2, lambda r: "'customer_vat_id'"),
]

UNFINISHED_MIX = {"queued": 45, "scheduled": 25, "retrying": 15, "pending": 10, "running": 5}
SOURCES = {"view": 40, "signal": 25, "api": 20, "schedule": 12, "admin": 2, "job": 1}


def uuid7_at(moment: datetime, rng: random.Random) -> str:
    """A version 7 id for `moment`, in jobs.models.new_job_id's layout, so ids keep the created order.

    Text rather than uuid.UUID: COPY parses it, and a million UUID objects cost seconds for nothing.
    """
    millis = int(moment.timestamp() * 1000)
    rand = rng.getrandbits(80)
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def draw(rng: random.Random, weighted: dict, k: int) -> list:
    """k weighted picks at once: one choices() call is far cheaper than a million."""
    return rng.choices(list(weighted), weights=list(weighted.values()), k=k)


class Generator:
    """Rows in COPY column order, oldest first (as jobs arrive: the heap follows the id order)."""

    def __init__(self, rows: int, tenant_ids: list[int], now: datetime, seed: int = SEED) -> None:
        self.rng = random.Random(seed)
        self.rows = rows
        self.now = now
        # Zipf-like: of 20 tenants the biggest has about 45% of the jobs, the smallest about 0.5%.
        weights = [1 / rank**TENANT_SKEW for rank in range(1, len(tenant_ids) + 1)]
        self.tenants: dict[int | None, float] = {
            tenant_id: (1 - SYSTEM_SHARE) * weight / sum(weights) for tenant_id, weight in zip(tenant_ids, weights)}
        self.tenants[None] = SYSTEM_SHARE
        from jobs.models import error_fingerprint

        self.fingerprint = error_fingerprint

    def __iter__(self) -> Iterator[tuple]:
        rng, n = self.rng, self.rows
        start = self.now - timedelta(days=DAYS)
        span = (self.now - start).total_seconds()
        offsets = sorted(rng.random() * span for _ in range(n))
        statuses = draw(rng, {"succeeded": 1 - FAILED_SHARE - CANCELLED_SHARE, "failed": FAILED_SHARE,
                              "cancelled": CANCELLED_SHARE}, n)
        self._add_backlog(statuses)
        tenants = draw(rng, self.tenants, n)
        kinds = draw(rng, {kind: kind.weight for kind in KINDS}, n)
        failures = draw(rng, {failure: failure.weight for failure in FAILURES}, n)
        sources = draw(rng, SOURCES, n)
        for i, offset in enumerate(offsets):
            failure = failures[i] if statuses[i] in ("failed", "retrying") else None
            kind = KIND_BY_NAME[failure.kind] if failure else kinds[i]
            yield self._row(start + timedelta(seconds=offset), statuses[i], kind, failure, tenants[i], sources[i])

    def _add_backlog(self, statuses: list[str]) -> None:
        """A backlog among the newest rows: a quarter of them unfinished, in a mix of statuses."""
        count = max(10, int(self.rows * UNFINISHED_SHARE))
        newest = range(max(0, self.rows - 4 * count), self.rows)
        positions = self.rng.sample(newest, min(count, len(newest)))
        for position, status in zip(positions, draw(self.rng, UNFINISHED_MIX, len(positions)), strict=True):
            statuses[position] = status

    def _row(self, created: datetime, status: str, kind: KindSpec, failure: FailureSpec | None, tenant: int | None,
             source: str) -> tuple:
        rng = self.rng
        timing = self._timing(created, status, kind)
        error, fingerprint = "", ""
        if failure is not None:
            message = failure.message(rng)
            error = f"{failure.error_type}: {message}"
            fingerprint = self.fingerprint(kind=kind.name, error_type=failure.error_type, message=message)
        elif status == "cancelled":
            error = "Cancelled by ops@example.com"
        progress, attempts, run_at, updated, enqueued, started, finished = timing
        return (
            uuid7_at(created, rng), tenant, kind.name, kind.queue, json.dumps(kind.payload(rng)), status,
            progress, "", attempts, kind.max_attempts, 300, run_at, created, updated, enqueued, started, finished,
            '{"ok": true}' if status == "succeeded" else None, error, fingerprint, source,
            "retry" if status == "retrying" else "first",
        )

    def _timing(self, created: datetime, status: str, kind: KindSpec) -> tuple:
        """(progress, attempts, run_at, updated_at, enqueued_at, started_at, finished_at), consistent with
        the status: finished rows were last updated when they finished."""
        rng = self.rng
        enqueued = created + timedelta(milliseconds=rng.uniform(2, 40))
        started = enqueued + timedelta(seconds=rng.expovariate(1 / 0.3))
        finished = min(started + timedelta(seconds=rng.lognormvariate(-1.0, 1.2)), self.now)
        if status == "succeeded":
            attempts = 1 if rng.random() < 0.95 else min(kind.max_attempts, 2)
            return 100, attempts, None, finished, enqueued, started, finished
        if status == "failed":
            return 0, kind.max_attempts, None, finished, enqueued, started, finished
        if status == "cancelled":
            return 0, 0, None, finished, enqueued, None, finished
        if status == "retrying":
            return 0, 1, finished + timedelta(minutes=rng.uniform(1, 30)), finished, enqueued, started, None
        if status == "running":
            return rng.randrange(0, 100, 10), 1, None, min(started, self.now), enqueued, started, None
        if status == "queued":
            return 0, 0, None, enqueued, enqueued, None, None
        run_at = self.now + timedelta(hours=rng.uniform(1, 48)) if status == "scheduled" else None
        return 0, 0, run_at, created, None, None, None  # pending, scheduled: not handed over yet


# --- loading -------------------------------------------------------------------------------------------

def ensure_people(staff_ranks: list[int]):
    """Tenants bench-01..20 (01 the biggest), a superuser, and per rank an operator of that one tenant."""
    from django.contrib.auth import get_user_model

    from tenants.models import Membership, Role, Tenant

    tenants = [Tenant.objects.get_or_create(slug=f"bench-{i:02d}", defaults={"name": f"Tenant {i:02d}"})[0]
               for i in range(1, TENANTS + 1)]
    users = get_user_model().objects
    superuser = users.filter(username="bench-super").first() or users.create_superuser("bench-super", password="x")
    staff = []
    for rank in staff_ranks:
        name, tenant = f"bench-staff-{rank:02d}", tenants[rank - 1]
        user = users.filter(username=name).first() or users.create_user(name, password="x", is_staff=True)
        Membership.objects.update_or_create(user=user, tenant=tenant, defaults={"role": Role.OPERATOR})
        staff.append((user, tenant))
    return tenants, superuser, staff


def job_count(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM jobs_job").fetchone()[0]


def load(url: str, rows: int, tenant_ids: list[int]) -> float:
    """Replace every job with `rows` generated ones in one transaction; return the seconds it took.

    Secondary indexes are dropped for the COPY and built afterwards (sorting once beats a million
    random index inserts); FREEZE after TRUNCATE in the same transaction writes the rows frozen.
    """
    import psycopg

    started = time.perf_counter()
    generator = Generator(rows, tenant_ids, datetime.now(UTC))
    with psycopg.connect(url) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("TRUNCATE jobs_job, jobs_attempt, jobs_auditevent, jobs_auditeventjob CASCADE")  # and what refers to them
        definitions = drop_secondary_indexes(conn)
        with conn.cursor().copy(f"COPY jobs_job ({', '.join(COLUMNS)}) FROM STDIN (FREEZE)") as copy:
            for index, row in enumerate(generator, 1):
                copy.write_row(row)
                if index % 200_000 == 0:
                    print(f"  {index:,} rows written ({time.perf_counter() - started:.0f} s)", flush=True)
        # Django's foreign keys are deferred; their checks must run before CREATE INDEX may touch the table.
        conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
        print(f"  building {len(definitions)} indexes ({time.perf_counter() - started:.0f} s)", flush=True)
        for definition in definitions:
            conn.execute(definition)
    with psycopg.connect(url, autocommit=True) as conn:
        # VACUUM sets the visibility map (index-only scans), as autovacuum would on a live table.
        conn.execute("VACUUM (ANALYZE) jobs_job")
        conn.execute("ANALYZE")
    return time.perf_counter() - started


def drop_secondary_indexes(conn) -> list[str]:
    """Drop jobs_job's indexes except those backing constraints; return their CREATE statements."""
    found = conn.execute(
        """SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index
           WHERE indrelid = 'jobs_job'::regclass
             AND indexrelid NOT IN (SELECT conindid FROM pg_constraint WHERE conrelid = 'jobs_job'::regclass)"""
    ).fetchall()
    for name, _ in found:
        conn.execute(f"DROP INDEX {name}")
    return [definition for _, definition in found]


# --- timing --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Page:
    name: str
    url: str


@dataclass
class Measure:
    page: str
    user: str
    median_ms: float
    min_ms: float
    queries: int
    slowest_sql_ms: float
    slow: list[tuple[float, str]]


def pages(tenant_id: int, job_id: uuid.UUID) -> list[Page]:
    changelist = "/admin/jobs/job/"
    return [
        Page("changelist", changelist),
        Page("changelist tenant+failed", f"{changelist}?tenant__id__exact={tenant_id}&status__exact=failed"),
        Page("search full id", f"{changelist}?q={job_id}"),
        Page("search short id", f"{changelist}?q={str(job_id)[-8:]}"),
        Page("changelist failed", f"{changelist}?status__exact=failed"),
        Page("queues", f"{changelist}queues/"),
        Page("triage", f"{changelist}triage/"),
        Page("workers", f"{changelist}workers/"),
        *(Page(f"home dashboard {key}", f"/admin/?range={key}") for key in ("1h", "24h", "7d", "30d")),
    ]


def sample_job(tenant) -> uuid.UUID:
    """A failed job of the staff member's tenant from mid-range: both users may find it by id."""
    from jobs.models import Job

    middle = datetime.now(UTC) - timedelta(days=DAYS / 2)
    return Job.objects.filter(tenant=tenant, status="failed", created_at__lte=middle).order_by("-id") \
        .values_list("id", flat=True)[0]


def measure(client, page: Page, user: str, reps: int, explain_ms: float) -> Measure:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    get(client, page.url)  # warm-up: connection, templates, caches, the pages of the table it reads
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        get(client, page.url)
        times.append((time.perf_counter() - start) * 1000)
    # Queries are counted in a separate request: capturing them slows the timed ones a little.
    with CaptureQueriesContext(connection) as captured:
        get(client, page.url)
    sql_ms = [(float(q["time"]) * 1000, q["sql"]) for q in captured.captured_queries]
    slow = [(ms, sql) for ms, sql in sql_ms if ms >= explain_ms]
    return Measure(page.name, user, statistics.median(times), min(times), len(sql_ms),
                   max((ms for ms, _ in sql_ms), default=0.0), slow)


def get(client, url: str):
    response = client.get(url)
    if response.status_code != 200:
        raise SystemExit(f"GET {url} answered {response.status_code}")
    return response


def explain(sql: str) -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        return [line for (line,) in cursor.fetchall()]


def report(results: list[Measure], explain_lines: int) -> None:
    print()
    print(f"{'page':<26} {'user':<12} {'median ms':>10} {'min ms':>8} {'queries':>8} {'slowest SQL ms':>15}  result")
    for m in results:
        verdict = "PASS" if m.median_ms < BUDGET_MS else "FAIL"
        print(f"{m.page:<26} {m.user:<12} {m.median_ms:>10.1f} {m.min_ms:>8.1f} {m.queries:>8} "
              f"{m.slowest_sql_ms:>15.1f}  {verdict}")
    print(f"(budget {BUDGET_MS:.0f} ms per page; median of the timed requests after one warm-up)")
    seen: set[str] = set()
    for m in results:
        for ms, sql in m.slow:
            if sql in seen:
                continue
            seen.add(sql)
            print(f"\n--- {m.page} / {m.user}: {ms:.1f} ms\n{sql[:600]}{' ...' if len(sql) > 600 else ''}")
            plan = explain(sql)
            for line in plan[:explain_lines]:
                print("    " + line)
            if len(plan) > explain_lines:
                print(f"    ... ({len(plan) - explain_lines} more lines)")
                print("    " + plan[-1])


# --- main ----------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reload", action="store_true", help="load the jobs again even if the count matches")
    parser.add_argument("--reps", type=int, default=7, help="timed requests per page and user")
    parser.add_argument("--db", default=DATABASE)
    parser.add_argument("--staff-tenants", default=f"1,{TENANTS}",
                        help="size ranks of the tenants to time a staff member of (1 = biggest, "
                             f"{TENANTS} = smallest); one operator per tenant")
    parser.add_argument("--explain-ms", type=float, default=50.0, help="explain queries at least this slow")
    parser.add_argument("--explain-lines", type=int, default=30)
    args = parser.parse_args()

    redis_server = RedisServer().start()  # the queues page asks RQ for its workers
    try:
        url = setup_database(args.db)
        setup_django(redis_server.url)
        run(args, url)
    finally:
        redis_server.cleanup()


def run(args, url: str) -> None:
    from django.conf import settings
    from django.core.management import call_command

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    call_command("migrate", verbosity=0)
    ranks = sorted({int(rank) for rank in args.staff_tenants.split(",")})
    tenants, superuser, staff = ensure_people(ranks)
    existing = job_count(url)
    if args.reload or existing != args.rows:
        print(f"loading {args.rows:,} jobs into {args.db} (found {existing:,})", flush=True)
        seconds = load(url, args.rows, [t.pk for t in tenants])
        print(f"loaded in {seconds:.1f} s (COPY, index builds, VACUUM ANALYZE)", flush=True)
    else:
        print(f"reusing {existing:,} jobs in {args.db} (--reload to load them again)")
        warn_if_stale()
    describe_data()
    summarize()
    # The superuser filters by the smallest of the staff tenants: the sparsest filter of the run.
    runs = [("superuser", superuser, staff[-1][1])]
    runs += [(f"staff t{rank:02d}", user, tenant) for rank, (user, tenant) in zip(ranks, staff, strict=True)]
    results = []
    for label, user, tenant in runs:
        results.extend(measure_user(label, user, tenant, args))
    report(results, args.explain_lines)


def measure_user(label: str, user, tenant, args) -> list[Measure]:
    from django.test import Client

    client = Client()
    client.force_login(user)
    results = []
    for page in pages(tenant.pk, sample_job(tenant)):
        results.append(measure(client, page, label, args.reps, args.explain_ms))
        print(f"  {page.name} / {label}: {results[-1].median_ms:.1f} ms", flush=True)
    return results


def summarize() -> None:
    """What the hourly system job does on a live system: the dashboard's days before today, summarized once."""
    from jobs import stats

    start = time.perf_counter()
    days = stats.stats_summarize()
    print(f"dashboard: {days} day(s) summarized in {time.perf_counter() - start:.1f} s (once; then a day an hour)")


def describe_data() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT status, count(*) FROM jobs_job GROUP BY status ORDER BY 2 DESC")
        statuses = ", ".join(f"{status} {count:,}" for status, count in cursor.fetchall())
        cursor.execute("SELECT t.slug, count(*) FROM jobs_job j JOIN tenants_tenant t ON t.id = j.tenant_id "
                       "GROUP BY t.slug ORDER BY t.slug")
        tenants = ", ".join(f"{slug[-2:]}: {count:,}" for slug, count in cursor.fetchall())
    print(f"jobs by status: {statuses}")
    print(f"jobs by tenant: {tenants}")


def warn_if_stale() -> None:
    """The queues page reads the last 24 hours: old data makes it look faster than it is."""
    from jobs.models import Job

    newest = Job.objects.order_by("-id").values_list("created_at", flat=True).first()
    if newest and datetime.now(UTC) - newest > timedelta(hours=6):
        print(f"note: the newest job is from {newest:%Y-%m-%d %H:%M} UTC; the 24-hour figures see less data "
              f"than on a live system (--reload makes it current)")


if __name__ == "__main__":
    main()
