"""gunicorn settings for the web process (Procfile, deploy/systemd/jobs-web.service).

Everything has an environment variable: PORT (or BIND), WEB_CONCURRENCY, WEB_THREADS, WEB_TIMEOUT,
FORWARDED_ALLOW_IPS.
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
# Access lines go to stderr, one JSON object each, like the application's own logs (LOG_FORMAT=json).
# The logger escapes every value as JSON string content and masks secret paths (report download and
# password-reset links): config/access_log.py.
accesslog = "-"
logger_class = "config.access_log.AccessLogger"
access_log_format = '{"logger": "gunicorn.access", "remote": "%(h)s", "request": "%(r)s", "status": %(s)s, "bytes": "%(B)s", "ms": %(M)s, "request_id": "%({x-request-id}o)s"}'
# The proxies whose X-Forwarded-Proto gunicorn believes (wsgi.url_scheme, so Django's request.is_secure()).
# Django's settings read the same variable to believe their X-Forwarded-For (login throttle).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
