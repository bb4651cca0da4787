"""The relay: the one gate through which every job reaches RQ.

Two ways in, one way out. New jobs are admitted at enqueue (`hold_reason` returns None): admitted rows
are stored already `queued` and pushed right after commit, saving a second write per job. Everything
else (rows left pending, due scheduled and retrying rows) is claimed by `relay` (`-> queued`, row
locks, so two relays never take the same row) or, for a tenant with a concurrency limit, by `refill`.
Either way the push is `hand_over`, and a failed push puts the rows back to `pending` for the next pass.

Fairness: a tenant may have at most its limit of jobs queued or running at once (JOBS_TENANT_CONCURRENCY,
or the tenant's own; a kind may cap its own jobs per tenant too, and limit how many of them a tenant
hands to workers per second, counted in Redis per second). Over the limit, jobs stay `pending`
with the reason as their progress message, and `refill(tenant)` hands over what fits the moment a slot
frees: a worker calls it after each attempt of that tenant, enqueue after storing held jobs, and the
periodic pass for every tenant with due work. So one tenant's backlog of thousands sits in the database
while every other tenant's jobs go to RQ behind at most that tenant's limit of queued jobs.

A paused queue's (or tenant's) waiting jobs stay in the database: new ones are stored `pending`, due
ones are not claimed, and `hold_paused` takes back the ones already queued in Redis (a worker that pops
one anyway finds its claim refused). Running jobs finish.
"""
from __future__ import annotations

import logging
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from itertools import islice
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Q, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from jobs import eventlog, postgres, transport
from jobs.models import ACTIVE_STATUSES, Job, QueueState, Status, error_fingerprint
from jobs.registry import GlobalLimit, global_limits, kind_caps, kind_rates, queue_limits
from tenants.models import Tenant

logger = logging.getLogger(__name__)

# After a failed push, eager relays (on commit, in a request) skip Redis for this long, so a Redis
# outage does not add a connect timeout to every request. Periodic passes always try.
BACKOFF_SECONDS = 5.0
_redis_down_until = 0.0


def redis_recently_down() -> bool:
    return time.monotonic() < _redis_down_until


# Enqueue asks "is this queue paused?" for every job; a process re-reads the answer at most this often.
# A job admitted in the gap is taken back by the next `hold_paused` pass or refused at its claim.
PAUSED_CACHE_SECONDS = 1.0
_paused_cache: tuple[float, frozenset[str]] = (float("-inf"), frozenset())


def paused_queues(*, fresh: bool = False) -> frozenset[str]:
    global _paused_cache
    read_at, names = _paused_cache
    now = time.monotonic()
    if fresh or now - read_at > PAUSED_CACHE_SECONDS:
        names = frozenset(QueueState.objects.filter(paused_at__isnull=False).values_list("name", flat=True))
        _paused_cache = (now, names)
    return names


def forget_paused_cache() -> None:
    global _paused_cache
    _paused_cache = (float("-inf"), frozenset())


HELD_AT_LIMIT = "Waiting: the tenant is at its concurrency limit."
HELD_KIND_LIMIT = "Waiting: the tenant is at its limit for this kind of job."
HELD_RATE = "Waiting: the tenant is at this kind's rate limit."
HELD_PAUSED = "Waiting: the tenant's work is paused."

# Enqueue reads each tenant's load from a per-process picture at most this old, and admits straight to
# RQ only below half the limit: the other half absorbs what other processes admit meanwhile. Nearer the
# limit, jobs are stored pending and `refill` decides under the tenant's lock.
LOAD_CACHE_SECONDS = 1.0


@dataclass
class Load:
    read_at: float = float("-inf")
    active: Counter = field(default_factory=Counter)  # tenant id -> jobs queued or running
    active_by_kind: Counter = field(default_factory=Counter)  # (tenant id, kind) -> the same
    limits: dict[int, int] = field(default_factory=dict)  # tenants with a limit of their own
    paused: frozenset[int] = frozenset()
    admitted: Counter = field(default_factory=Counter)  # admitted by this process since `read_at`


_load = Load()


def tenant_load(*, fresh: bool = False) -> Load:
    global _load
    if fresh or time.monotonic() - _load.read_at > LOAD_CACHE_SECONDS:
        load = Load(read_at=time.monotonic())
        active = (Job.objects.filter(status__in=ACTIVE_STATUSES, tenant__isnull=False)
                  .values_list("tenant_id", "kind").annotate(n=Count("id")).order_by())
        for tenant_id, kind, count in active:
            load.active[tenant_id] += count
            load.active_by_kind[tenant_id, kind] += count
        own = Tenant.objects.filter(Q(concurrency_limit__isnull=False) | Q(paused_at__isnull=False))
        paused = []
        for tenant_id, limit, paused_at in own.values_list("pk", "concurrency_limit", "paused_at"):
            if limit is not None:
                load.limits[tenant_id] = limit
            if paused_at is not None:
                paused.append(tenant_id)
        load.paused = frozenset(paused)
        _load = load
    return _load


def forget_tenant_load() -> None:
    global _load
    _load = Load()


def tenant_limit(tenant_id: int, limits: dict[int, int] | None = None) -> int:
    """The tenant's concurrency limit (0: none)."""
    limits = tenant_load().limits if limits is None else limits
    return limits.get(tenant_id, settings.JOBS_TENANT_CONCURRENCY)


def hold_reason(count: int, *, queue: str, tenant_id: int | None, kind: str) -> str | None:
    """None if `count` new jobs may go straight to RQ after commit; else why they are stored `pending`."""
    # While Redis is known to be failing, skip the doomed post-commit push; a periodic pass relays.
    if redis_recently_down() or queue in paused_queues():
        return ""
    limited = global_scope(kind, queue)
    if tenant_id is None:
        return limited.reason if limited else None
    load = tenant_load()
    if tenant_id in load.paused:
        return HELD_PAUSED
    if limited:  # across tenants: `global_refill` hands them over, under the limit's lock
        return limited.reason
    limit = tenant_limit(tenant_id, load.limits)
    if limit and load.active[tenant_id] + load.admitted[tenant_id] + count > limit // 2:
        return HELD_AT_LIMIT
    cap = kind_caps().get(kind)
    if cap is not None and load.active_by_kind[tenant_id, kind] + load.admitted[tenant_id, kind] + count > cap // 2:
        return HELD_KIND_LIMIT
    rate = kind_rates().get(kind)
    if rate is not None:
        second = int(time.time())
        try:
            granted = transport.rate_take(f"{tenant_id}:{kind}", count, rate, second=second)
        except transport.TransportError:
            return ""
        if granted < count:
            transport.rate_return(f"{tenant_id}:{kind}", granted, second=second)
            return HELD_RATE
    load.admitted[tenant_id] += count
    load.admitted[tenant_id, kind] += count
    return None


def may_have_room(tenant_id: int, kind: str) -> bool:
    """Whether, by this process's picture of the load, a refill could hand over one more of the tenant's
    jobs of `kind` now. When not, the jobs running free the room and refill as they end; if the picture
    was stale (it is at most LOAD_CACHE_SECONDS old), the scheduler's relay pass, a tick away, hands over."""
    load = tenant_load()
    limit = tenant_limit(tenant_id, load.limits)
    if limit and load.active[tenant_id] + load.admitted[tenant_id] >= limit:
        return False
    cap = kind_caps().get(kind)
    return cap is None or load.active_by_kind[tenant_id, kind] + load.admitted[tenant_id, kind] < cap


def hold_paused(limit: int = 5000) -> int:
    """Take jobs of paused queues and paused tenants that are queued in Redis back to `pending`."""
    paused = paused_queues(fresh=True)
    paused_tenants = tenant_load(fresh=True).paused
    if not paused and not paused_tenants:
        return 0
    with transaction.atomic():
        rows = list(Job.objects.filter(Q(queue__in=paused) | Q(tenant_id__in=paused_tenants), status=Status.QUEUED)
                    .select_for_update(skip_locked=True, of=("self",)).values_list("id", "queue", "tenant_id")[:limit])
        held = Job.objects.filter(pk__in=[row[0] for row in rows if row[2] not in paused_tenants]).transition_logged(
            Status.PENDING, reason="queue paused")
        held += Job.objects.filter(pk__in=[row[0] for row in rows if row[2] in paused_tenants]).transition_logged(
            Status.PENDING, reason="tenant paused", progress_message=HELD_PAUSED)
        rows = [(job_id, queue) for job_id, queue, _ in rows]
    try:
        transport.remove((str(job_id), queue) for job_id, queue in rows)
    except transport.TransportError as exc:
        logger.warning("Redis unreachable while holding paused jobs (their claims are refused): %s", exc)
    return held


def hand_over(batch: list[transport.Handover]) -> bool:
    """Push rows already marked queued to RQ: the only place jobs reach Redis. False if Redis failed."""
    global _redis_down_until
    routable = [item for item in batch if item.queue in settings.RQ_QUEUES]
    if len(routable) < len(batch):
        _fail_unroutable([item for item in batch if item.queue not in settings.RQ_QUEUES])
    try:
        transport.push(routable)
    except transport.TransportError as exc:
        _release(routable)
        _redis_down_until = time.monotonic() + BACKOFF_SECONDS
        logger.warning("Redis unreachable, %d job(s) stay pending: %s", len(routable), exc)
        return False
    except Exception:
        _release(routable)
        logger.exception("Hand-over of %d job(s) failed; they stay pending", len(routable))
        return False
    return True


def _fail_unroutable(items: list[transport.Handover]) -> None:
    # A queue renamed or removed from settings while jobs still wait on it: fail them visibly rather
    # than let them block every batch they are in.
    for item in items:
        message = f"Queue {item.queue!r} is not configured (RQ_QUEUES); the job cannot run."
        Job.objects.filter(pk=item.job_id, status=Status.QUEUED).transition_logged(
            Status.FAILED, reason="queue not configured", finished_at=timezone.now(), last_error=message,
            error_fingerprint=error_fingerprint(kind=item.kind, error_type="UnknownQueue", message=message),
        )
        logger.error("Job %s failed: queue %r is not configured", item.job_id, item.queue)


def relay(*, job_ids: Collection[UUID] | None = None, eager: bool = False) -> int:
    """Hand due jobs (all, or only `job_ids`) to RQ; return how many were handed over."""
    if eager and redis_recently_down():
        return 0
    handed = 0
    for chunk in _chunks(job_ids):
        while True:
            batch = _claim_batch(chunk)
            if not batch:
                break
            if not hand_over(batch):
                return handed
            handed += len(batch)
            if chunk is not None:
                break
    # Tenants with a limit go through `refill`, each for what fits under its own limit: round robin.
    for tenant_id in _limited_tenants_with_due_work(job_ids):
        handed += refill(tenant_id)
    for scope in _global_scopes_with_due_work(job_ids):
        handed += global_refill(scope)
    return handed


def _chunks(job_ids: Collection[UUID] | None) -> Iterator[list[UUID] | None]:
    if job_ids is None:
        yield None
        return
    iterator = iter(job_ids)
    while chunk := list(islice(iterator, settings.JOBS_RELAY_BATCH)):
        yield chunk


def _due_rows(now):
    """Due rows `relay` claims itself: system jobs and jobs of tenants without a limit."""
    load = tenant_load(fresh=True)
    rows = Job.objects.due(now).exclude(queue__in=paused_queues(fresh=True))
    if counted := _counted_kinds():  # a tenant's capped and rate-limited kinds go through `refill`
        rows = rows.exclude(tenant__isnull=False, kind__in=counted)
    # Kinds and queues limited across tenants go through `global_refill`.
    if limited := list(global_limits()):
        rows = rows.exclude(kind__in=limited)
    if limited_queues := list(queue_limits()):
        rows = rows.exclude(queue__in=limited_queues)
    unlimited = [tenant_id for tenant_id, limit in load.limits.items() if limit == 0 and tenant_id not in load.paused]
    if settings.JOBS_TENANT_CONCURRENCY:
        return rows.filter(Q(tenant__isnull=True) | Q(tenant_id__in=unlimited))
    limited = [tenant_id for tenant_id, limit in load.limits.items() if limit]
    return rows.exclude(tenant_id__in=[*limited, *load.paused])


def _limited_tenants_with_due_work(job_ids: Collection[UUID] | None) -> list[int]:
    now = timezone.now()
    held = Job.objects.filter(status=Status.PENDING, tenant__isnull=False)
    timed = Job.objects.filter(status__in=(Status.SCHEDULED, Status.RETRYING), run_at__lte=now, tenant__isnull=False)
    tenant_ids: set[int] = set()
    for rows in (held, timed):  # apart, so each reads its own small partial index
        if job_ids is not None:
            rows = rows.filter(pk__in=list(job_ids))
        tenant_ids.update(rows.values_list("tenant_id", flat=True).order_by().distinct())
    load = tenant_load()
    counted = _counted_kinds()
    with_counted_work = set(Job.objects.due(now).filter(tenant__isnull=False, kind__in=counted).values_list(
        "tenant_id", flat=True).order_by().distinct()) if counted else set()
    return sorted(t for t in tenant_ids if (tenant_limit(t, load.limits) or t in with_counted_work)
                  and t not in load.paused)


def _counted_kinds() -> list[str]:
    """Kinds whose jobs are counted per tenant (a concurrency cap or a rate limit of their own)."""
    return sorted(set(kind_caps()) | set(kind_rates()))


_freed_since_check: Counter = Counter()  # per tenant (and per globally limited kind), in this process


def slot_freed(tenant_id: int | None, *, kind: str = "", queue: str = "", sampled: bool = True) -> int:
    """A job (of `kind`, on `queue`) of this tenant left `queued`/`running` (or, with `sampled` off, jobs
    were just held back at enqueue): hand over what it has waiting, a few at a time."""
    if redis_recently_down():
        return 0
    scope = global_scope(kind, queue)
    if scope is not None:  # the slot is the kind's or the queue's, across tenants
        if sampled:
            # A refill looks at every tenant's waiting jobs under the limit: once per quarter of the
            # limit freed in this process (every time for a limit under 8), not after every job.
            _freed_since_check[scope.key] += 1
            limit = scope.limit
            if _freed_since_check[scope.key] < max(1, min(n for n in (limit.concurrency, limit.rate) if n) // 4):
                return 0
            _freed_since_check[scope.key] = 0
        try:
            return global_refill(scope)
        except Exception:
            logger.exception("Global refill of %s failed; the next relay pass retries", scope.key)
            return 0
    if tenant_id is None:
        return 0
    limit = tenant_limit(tenant_id)
    if kind in kind_caps():
        sampled, limit = False, limit or settings.JOBS_RELAY_BATCH  # its own few slots: refill at once
    if not limit:
        return 0
    # One check (a count of the tenant's queued and running jobs) per quarter of the limit freed in each
    # process: with two or more processes freeing slots, about every half limit freed overall, which is
    # what a refill waits for (it refills at half the limit), long before the queue runs dry.
    if sampled:
        _freed_since_check[tenant_id] += 1
        if _freed_since_check[tenant_id] < max(1, limit // 4):
            return 0
        _freed_since_check[tenant_id] = 0
    try:
        # Refilling in batches (half the limit) keeps the tenant's queue in RQ at least half full at a
        # fraction of the cost of a refill per job; and a refill already under way for the tenant is
        # left to finish the work rather than waited for. What a batch leaves, the periodic pass takes.
        return refill(tenant_id, at_least=max(1, limit // 2) if sampled else 1, wait=False)
    except Exception:
        # Never the caller's problem: the periodic pass hands the work over a moment later.
        logger.exception("Refill of tenant %s failed; the next relay pass retries", tenant_id)
        return 0


def refill(tenant_id: int, *, at_least: int = 1, wait: bool = True) -> int:
    """Hand over the tenant's due jobs that fit under its limits, in queue order, then by job priority,
    then oldest first, once at least `at_least` fit; due scheduled and retrying jobs that do not fit wait `pending`
    with the reason. Without `wait`, a refill of the same tenant under way elsewhere makes this a no-op."""
    now = timezone.now()
    # One query decides whether there is anything to do (the usual answer after an attempt: no). A
    # backlog smaller than the batch goes as soon as it fits.
    state = _tenant_state(tenant_id, now, enough=at_least)
    if state is None or not state["waiting"] or state["paused_at"] is not None:
        return 0
    at_least = min(at_least, state["waiting"])
    limit = concurrency_limit_of(state["concurrency_limit"])
    if limit and limit - state["busy"] < at_least:
        return 0
    due = Job.objects.due(now).filter(tenant_id=tenant_id)
    with transaction.atomic():
        if not _lock_tenant(tenant_id, wait=wait):  # refills of one tenant take turns: counts and picks agree
            return 0
        state = _tenant_state(tenant_id, now)
        if state is None or state["paused_at"] is not None:
            return 0
        limit = concurrency_limit_of(state["concurrency_limit"])
        if limit and limit - state["busy"] < at_least:
            return 0
        caps = kind_caps()
        active = dict(Job.objects.filter(tenant_id=tenant_id, status__in=ACTIVE_STATUSES, kind__in=list(caps))
                      .values_list("kind").annotate(n=Count("id")).order_by()) if caps else {}
        room = limit - state["busy"] if limit else settings.JOBS_RELAY_BATCH
        kind_room = {kind: cap - active.get(kind, 0) for kind, cap in caps.items()}
        kind_room.update(dict.fromkeys(global_limits(), 0))  # handed over by `global_refill` only
        # This second's hand-overs of rate-limited kinds, taken now; what the pick does not use goes back.
        second = int(time.time())
        granted = {kind: transport.rate_take(f"{tenant_id}:{kind}", max(0, min(room, kind_room.get(kind, room))), rate,
                                             second=second)
                   for kind, rate in kind_rates().items()} if room > 0 else {}
        kind_room.update(granted)
        if room <= 0:
            picked = []
        elif postgres.supported():
            picked = postgres.refill_pick(tenant_id=tenant_id, now=now, room=room, queues=list(settings.RQ_QUEUES),
                                            paused=sorted(_not_refilled_queues()), kind_room=kind_room,
                                            held_message=HELD_AT_LIMIT, held_elsewhere=sorted(global_limits()))
        else:
            picked = _pick(tenant_id, now, room, kind_room)
            Job.objects.filter(pk__in=[row[0] for row in picked]).transition(
                Status.QUEUED, enqueued_at=now, progress_message="")
            # Due retries and delayed jobs that did not fit wait with the others, saying why (those of paused
            # queues and of limits across tenants are left to what holds them).
            due.filter(status__in=(Status.SCHEDULED, Status.RETRYING)).exclude(
                pk__in=[row[0] for row in picked]).exclude(queue__in=_not_refilled_queues()).exclude(
                kind__in=list(global_limits())).transition(Status.PENDING, progress_message=HELD_AT_LIMIT)
    for kind, tokens in granted.items():
        transport.rate_return(f"{tenant_id}:{kind}", tokens - sum(1 for row in picked if row[2] == kind),
                              second=second)
    if not picked:
        return 0
    # The order RQ gets them in (an UPDATE returns rows in no set order): by priority, then oldest (ids are
    # time-ordered); a queue's own list keeps it.
    picked.sort(key=lambda row: (-row[7], row[0]))
    for row in picked:  # this process's picture of the load counts what it just handed over
        _load.admitted[tenant_id] += 1
        _load.admitted[tenant_id, row[2]] += 1
    eventlog.jobs_changed(((row[0], tenant_id, row[2], row[4], row[6]) for row in picked), status=Status.QUEUED)
    batch = [_handover(row, state["slug"]) for row in picked]
    return len(batch) if hand_over(batch) else 0


GLOBAL_LOCK_SPACE = 7302  # pg_advisory_xact_lock(space, crc32 of the scope's key) for global refills


@dataclass(frozen=True)
class GlobalScope:
    """The jobs one limit across tenants covers: a kind's (`field` "kind"), or a queue's (every job on it
    but those of kinds limited on their own: a job is under one global limit)."""

    field: str
    name: str
    limit: GlobalLimit

    @property
    def key(self) -> str:
        """Names its lock, its rate bucket and its count of freed slots."""
        return f"{self.field}:{self.name}"

    @property
    def subject(self) -> str:
        """What it limits, as people read it: "email.send", "queue bulk"."""
        return self.name if self.field == "kind" else f"queue {self.name}"

    @property
    def reason(self) -> str:
        return self.limit.reason(self.subject)

    def jobs(self, rows):
        if self.field == "kind":
            return rows.filter(kind=self.name)
        return rows.filter(queue=self.name).exclude(kind__in=list(global_limits()))


def global_scope(kind: str, queue: str) -> GlobalScope | None:
    """The limit across tenants a job of `kind` on `queue` is under: its kind's, else its queue's, else none."""
    limit = global_limits().get(kind)
    if limit is not None:
        return GlobalScope("kind", kind, limit)
    limit = queue_limits().get(queue)
    return GlobalScope("queue", queue, limit) if limit is not None else None


def global_scopes() -> list[GlobalScope]:
    """Every limit across tenants: the kinds' (`@job_kind`, JOBS_KIND_LIMITS), then the queues'."""
    return ([GlobalScope("kind", name, limit) for name, limit in sorted(global_limits().items())]
            + [GlobalScope("queue", name, limit) for name, limit in sorted(queue_limits().items())])


def _not_refilled_queues() -> set[str]:
    """Queues a tenant's refill takes nothing from: paused ones, and those limited across tenants (their
    jobs go through `global_refill`)."""
    return paused_queues() | set(queue_limits())


def global_refill(scope: GlobalScope) -> int:
    """Hand over due jobs under a limit across tenants (a kind's or a queue's), as many as its concurrency
    and this second's rate allow, taking them from the tenants with waiting work in turn (round robin:
    each tenant's highest priority, then oldest, before anyone's second), within each tenant's own limit."""
    limit = scope.limit
    now = timezone.now()
    with transaction.atomic():
        if not _lock(GLOBAL_LOCK_SPACE, zlib.crc32(scope.key.encode()), wait=False):
            return 0  # another refill under the same limit is under way: it hands over what fits
        room = settings.JOBS_RELAY_BATCH
        if limit.concurrency is not None:
            room = min(room, limit.concurrency - scope.jobs(Job.objects.filter(status__in=ACTIVE_STATUSES)).count())
        second = int(time.time())
        granted = transport.rate_take(f"global:{scope.key}", max(0, room), limit.rate, second=second) \
            if limit.rate and room > 0 else None
        if granted is not None:
            room = granted
        picked = _pick_across_tenants(scope, now, room) if room > 0 else []
        Job.objects.filter(pk__in=[row[0] for row in picked]).transition(Status.QUEUED, enqueued_at=now,
                                                                          progress_message="")
        # Due retries and delayed jobs under the limit that did not fit wait with the others, saying why.
        scope.jobs(Job.objects.due(now).filter(status__in=(Status.SCHEDULED, Status.RETRYING))).exclude(
            pk__in=[row[0] for row in picked]).transition(Status.PENDING, progress_message=scope.reason)
    if granted is not None:
        transport.rate_return(f"global:{scope.key}", granted - len(picked), second=second)
    if not picked:
        return 0
    slugs = dict(Tenant.objects.filter(pk__in={row[8] for row in picked if row[8]}).values_list("pk", "slug"))
    eventlog.jobs_changed(((row[0], row[8], row[2], row[4], row[6]) for row in picked), status=Status.QUEUED)
    batch = [_handover(row[:8], slugs.get(row[8])) for row in picked]
    return len(batch) if hand_over(batch) else 0


def _pick_across_tenants(scope: GlobalScope, now, room: int) -> list[tuple]:
    """Up to `room` due rows under the limit, tenants in turn: a tenant's n-th waiting job (its highest
    priority, then oldest, first) comes in turn n + the jobs under the limit it already has queued or
    running, so the tenant holding fewest slots goes first. Paused queues and tenants are skipped, and
    tenants at their own limit."""
    load = tenant_load(fresh=True)
    if postgres.supported():
        rows = _turns(postgres.global_candidates(
            field=scope.field, name=scope.name, excluded_kinds=list(global_limits()) if scope.field == "queue" else [],
            now=now, room=room, paused_queues=sorted(paused_queues()), paused_tenants=load.paused, fields=PICK_FIELDS))
    else:
        due = (scope.jobs(Job.objects.due(now)).exclude(queue__in=paused_queues())
               .exclude(tenant_id__in=load.paused))
        ranked = (due.annotate(turn=Window(RowNumber(), partition_by=[F("tenant_id")],
                                           order_by=[F("priority").desc(), F("id").asc()]))
                  .filter(turn__lte=room).order_by("turn", "-priority", "id")
                  .values_list(*PICK_FIELDS, "tenant_id", "turn"))
        rows = list(ranked[: room * 4])  # some may belong to tenants at their limit
    tenants = {row[8] for row in rows if row[8] is not None}
    active = Job.objects.filter(tenant_id__in=tenants, status__in=ACTIVE_STATUSES)
    busy = dict(active.values_list("tenant_id").annotate(n=Count("id")).order_by())
    holding = dict(scope.jobs(active).values_list("tenant_id").annotate(n=Count("id")).order_by())
    rows.sort(key=lambda row: (row[9] + holding.get(row[8], 0), -row[7], row[0]))
    allowed = {}
    for tenant_id in tenants:
        own = tenant_limit(tenant_id, load.limits)
        allowed[tenant_id] = own - busy.get(tenant_id, 0) if own else room  # 0: no limit of its own
    picked = []
    for row in rows:
        if len(picked) >= room:
            break
        if row[8] is not None:
            if allowed[row[8]] <= 0:
                continue
            allowed[row[8]] -= 1
        picked.append(row[:9])
    return picked


def _turns(candidates: list[tuple]) -> list[tuple]:
    """Each row with its turn within its tenant (1 for its highest priority, then oldest), as the rows
    `_pick_across_tenants` ranks: the fields, the tenant id, the turn."""
    by_tenant: dict[int | None, list[tuple]] = defaultdict(list)
    for row in candidates:
        by_tenant[row[8]].append(row)
    turns = []
    for rows in by_tenant.values():
        rows.sort(key=lambda row: (-row[7], row[0]))
        turns.extend((*row, turn) for turn, row in enumerate(rows, start=1))
    return turns


def _global_scopes_with_due_work(job_ids: Collection[UUID] | None) -> list[GlobalScope]:
    kinds, queues = global_limits(), queue_limits()
    if not kinds and not queues:
        return []
    rows = Job.objects.due(timezone.now()).filter(Q(kind__in=list(kinds)) | Q(queue__in=list(queues)))
    if job_ids is not None:
        rows = rows.filter(pk__in=list(job_ids))
    scopes = {global_scope(kind, queue) for kind, queue in rows.values_list("kind", "queue").order_by().distinct()}
    return sorted((scope for scope in scopes if scope is not None), key=lambda scope: scope.key)


def _tenant_state(tenant_id: int, now, enough: int = 1) -> dict | None:
    row = postgres.tenant_state(tenant_id=tenant_id, now=now, enough=enough)
    if row is None:
        return None
    return dict(zip(("paused_at", "concurrency_limit", "slug", "busy", "waiting"), row, strict=True))


def concurrency_limit_of(own: int | None) -> int:
    """A tenant's concurrency limit from its own setting (None: the project's default); 0: no limit."""
    return settings.JOBS_TENANT_CONCURRENCY if own is None else own


def _lock_tenant(tenant_id: int, *, wait: bool = True) -> bool:
    """Take the tenant's refill lock for this transaction; without `wait`, False if another holds it."""
    return _lock(RELAY_LOCK_SPACE, tenant_id, wait=wait)


def _lock(space: int, key: int, *, wait: bool) -> bool:
    if connection.vendor != "postgresql":
        return True  # SQLite runs one writer at a time anyway
    key = key - (1 << 32) if key >= 1 << 31 else key  # the int4 the two-key form takes
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [space, key])
            return True
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [space, key])
        return bool(cursor.fetchone()[0])


RELAY_LOCK_SPACE = 7301  # the first key of pg_advisory_xact_lock(space, tenant id) for refills

PICK_FIELDS = ("id", "queue", "kind", "timeout", "attempts", "enqueued_at", "request_id", "priority")


def _pick(tenant_id: int, now, room: int, kind_room: dict[str, int]) -> list[tuple]:
    """Up to `room` due rows of the tenant: due retries and delayed jobs first (few, by priority, then
    time), then held jobs by queue order, then by priority, oldest first (a range scan of the pending
    index per queue); each kind within its own room."""
    picked: list[tuple] = []
    paused = _not_refilled_queues()
    timed = (Job.objects.filter(tenant_id=tenant_id, status__in=(Status.SCHEDULED, Status.RETRYING), run_at__lte=now)
             .exclude(queue__in=paused).order_by("-priority", "run_at"))
    held = Job.objects.filter(tenant_id=tenant_id, status=Status.PENDING)
    sources = [timed, *(held.filter(queue=queue).order_by("-priority", "id") for queue in settings.RQ_QUEUES
                        if queue not in paused),
               # on a queue no longer configured: handed over only to be failed visibly (see hand_over)
               held.exclude(queue__in=list(settings.RQ_QUEUES)).order_by("id")]
    for rows in sources:
        for _ in range(3):  # another look past rows of kinds that filled up on the way
            if len(picked) >= room:
                return picked
            full = [kind for kind, left in kind_room.items() if left <= 0]
            batch = rows.exclude(kind__in=full).exclude(pk__in=[row[0] for row in picked])
            took_all = True
            for row in batch.values_list(*PICK_FIELDS)[: room - len(picked)]:
                kind = row[2]
                if kind in kind_room:
                    if kind_room[kind] <= 0:
                        took_all = False
                        continue
                    kind_room[kind] -= 1
                picked.append(row)
            if took_all:
                break
    return picked


def _handover(row: tuple, tenant_slug: str | None) -> transport.Handover:
    job_id, queue, kind, timeout, attempts, enqueued_at, _, priority = row
    return transport.Handover(
        job_id=str(job_id), queue=queue, kind=kind, tenant=tenant_slug or "system", timeout=timeout,
        # Handed over before (a retry, or Redis lost it): clear what RQ may still hold under the id.
        fresh=attempts == 0 and enqueued_at is None, priority=priority,
    )


def _claim_batch(job_ids: list[UUID] | None) -> list[transport.Handover]:
    now = timezone.now()
    with transaction.atomic():
        rows = _due_rows(now)
        if job_ids is not None:
            rows = rows.filter(pk__in=job_ids)
        rows = list(
            rows.select_for_update(skip_locked=True, of=("self",))
            .order_by("-priority", "run_at", "created_at")
            .values_list(*PICK_FIELDS, "tenant_id", "tenant__slug")[: settings.JOBS_RELAY_BATCH]
        )
        if not rows:
            return []
        claimed = Job.objects.filter(pk__in=[row[0] for row in rows]).transition(Status.QUEUED, enqueued_at=now)
        if claimed != len(rows):
            # Without row locks (SQLite) another relay may have raced us; re-read what is ours.
            ours = set(Job.objects.filter(pk__in=[r[0] for r in rows], enqueued_at=now).values_list("id", flat=True))
            rows = [row for row in rows if row[0] in ours]
    eventlog.jobs_changed(((row[0], row[8], row[2], row[4], row[6]) for row in rows), status=Status.QUEUED)
    return [_handover(row[:8], row[-1]) for row in rows]


def _release(batch: list[transport.Handover]) -> None:
    Job.objects.filter(pk__in=[item.job_id for item in batch], status=Status.QUEUED).transition_logged(
        Status.PENDING, reason="hand-over failed")
