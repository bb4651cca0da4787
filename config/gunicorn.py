"""gunicorn settings for the web process (Procfile, deploy/systemd/jobs-web.service).

Everything has an environment variable: PORT (or BIND), WEB_CONCURRENCY, WEB_THREADS, WEB_TIMEOUT.
"""
import os

bind = os.environ.get("BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
threads = int(os.environ.get("WEB_THREADS", "4"))
timeout = int(os.environ.get("WEB_TIMEOUT", "60"))
# SIGTERM: stop accepting, finish requests in flight for up to this long, then exit.
graceful_timeout = 30
# A worker is recycled after this many requests (with jitter), bounding any slow leak.
max_requests = 2000
max_requests_jitter = 200
# Access lines go to stderr; the application's own logs are JSON (LOG_FORMAT).
accesslog = "-"
access_log_format = '{"logger": "gunicorn.access", "remote": "%(h)s", "request": "%(r)s", "status": %(s)s, "bytes": "%(B)s", "ms": %(M)s, "request_id": "%({x-request-id}o)s"}'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
