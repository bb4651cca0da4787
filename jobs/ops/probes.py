"""Short-timeout looks at Redis for the health checks, metrics and the admin's outage banner.

The engine's own connection waits seconds for a hung Redis (it must, for a hand-over); a probe gives up
after OPS_CHECK_TIMEOUT and never retries, so a health check or an admin page stays fast in an outage.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django_rq.connection_utils import get_redis_connection
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry
from rq.worker import Worker

_probes: dict[tuple, Redis] = {}


def redis_probe() -> Redis:
    """A Redis client on the queues' server with short timeouts and no retries (cached per process)."""
    config = settings.RQ_QUEUES["default"]
    timeout = settings.OPS_CHECK_TIMEOUT
    key = (config.get("URL"), str(config.get("SENTINELS")), timeout)
    probe = _probes.get(key)
    if probe is None:
        probe = _probes[key] = _connect(config, timeout)
    return probe


def _connect(config: dict, timeout: float) -> Redis:
    if "URL" in config:
        # Options in the URL win over keyword arguments in redis-py, so the timeouts go into the URL.
        parts = urlsplit(config["URL"])
        query = dict(parse_qsl(parts.query))
        query.update(socket_timeout=str(timeout), socket_connect_timeout=str(timeout))
        query.pop("health_check_interval", None)
        url = urlunsplit(parts._replace(query=urlencode(query)))
        return Redis.from_url(url, retry=Retry(NoBackoff(), 0))
    short = {**config, "SOCKET_TIMEOUT": timeout,
             "CONNECTION_KWARGS": {**config.get("CONNECTION_KWARGS", {}), "socket_connect_timeout": timeout}}
    return get_redis_connection(short)


@dataclass(frozen=True)
class RedisState:
    reachable: bool
    error: str = ""  # the exception's type only: its text names hosts and ports


def redis_state() -> RedisState:
    """PING Redis now."""
    try:
        redis_probe().ping()
    except RedisError as exc:
        return RedisState(False, type(exc).__name__)
    return RedisState(True)


_cached: tuple[float, RedisState] | None = None


def redis_state_cached() -> RedisState:
    """`redis_state`, answered from this process's last look for OPS_REDIS_STATE_CACHE_SECONDS: every
    admin page asks, and in an outage each look costs up to the timeout."""
    global _cached
    now = time.monotonic()
    if _cached is None or now - _cached[0] >= settings.OPS_REDIS_STATE_CACHE_SECONDS:
        _cached = (now, redis_state())
    return _cached[1]


def forget_redis_state() -> None:
    global _cached
    _cached = None


@dataclass(frozen=True)
class LiveWorkers:
    total: int  # live workers
    by_queue: dict[str, int]  # live workers listening on each queue (a worker on several counts for each)


def live_workers_by_queue() -> LiveWorkers:
    """Live RQ workers, in all and per queue, from RQ's worker registry, in two round trips.

    A worker killed without a goodbye stays in the registry's set until RQ cleans it up, but its hash
    (which expires with its heartbeat) is gone: such entries are not counted. Raises RedisError.
    """
    connection = redis_probe()
    keys = Worker.all_keys(connection=connection)
    if not keys:
        return LiveWorkers(0, {})
    with connection.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hget(key, "queues")
        replies = pipe.execute()
    counts: dict[str, int] = {}
    for queues in replies:
        for name in (queues or b"").decode().split(","):
            if name:
                counts[name] = counts.get(name, 0) + 1
    return LiveWorkers(sum(1 for queues in replies if queues is not None), counts)
