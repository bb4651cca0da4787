"""A worker of the given class on the default queue (run by the benchmarks as a subprocess): burst, or
with a third argument `forever`, until terminated. RQ's own classes (`rq.worker.*`) run as bare RQ does,
without Django or anything of the project; ours run as `manage.py rqworker` would."""
from __future__ import annotations

import logging
import sys

worker_class_path, redis_url = sys.argv[1], sys.argv[2]
burst = sys.argv[3:] != ["forever"]

if worker_class_path.startswith("rq."):
    from redis import Redis
    from rq import Queue
    from rq.serializers import JSONSerializer
    from rq.utils import import_attribute

    sys.path.insert(0, __file__.rsplit("/", 1)[0])  # bare.py
    logging.getLogger("rq.worker").setLevel(logging.WARNING)
    connection = Redis.from_url(redis_url)
    queue = Queue("default", connection=connection, serializer=JSONSerializer)
    worker = import_attribute(worker_class_path)([queue], connection=connection, serializer=JSONSerializer)
    worker.work(burst=burst, logging_level="WARNING")
    sys.exit(0)

from common import setup_django  # noqa: E402

setup_django(redis_url)

from django.db import connections  # noqa: E402
from rq.serializers import JSONSerializer  # noqa: E402
from rq.utils import import_attribute  # noqa: E402

from jobs import transport  # noqa: E402

logging.getLogger("rq.worker").setLevel(logging.WARNING)
worker_class = import_attribute(worker_class_path)
queue = transport.get_queue("default")
connections.close_all()  # as django-rq's rqworker does before forking
worker = worker_class([queue], connection=queue.connection, serializer=JSONSerializer)
worker.work(burst=burst, logging_level="WARNING")
