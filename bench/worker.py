"""A worker of the given class on the default queue (run by the benchmarks as a subprocess): burst, or
with a third argument `forever`, until terminated."""
from __future__ import annotations

import logging
import sys

from common import setup_django

worker_class_path, redis_url = sys.argv[1], sys.argv[2]
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
worker.work(burst=sys.argv[3:] != ["forever"], logging_level="WARNING")
