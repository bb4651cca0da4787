"""Django settings of the Celery peer (bench/peers/celery_project.py)."""
import os

SECRET_KEY = "celery-peer"
INSTALLED_APPS = ["django_celery_results"]
DATABASES = {"default": {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": os.environ["PEER_DB_NAME"],
    "USER": os.environ.get("PEER_DB_USER", "postgres"),
    "HOST": os.environ.get("PEER_DB_HOST", "127.0.0.1"),
    "PORT": os.environ.get("PEER_DB_PORT", "5432"),
    # Django's default (0): a connection per request, or here, as Celery's Django fixup manages it.
    "CONN_MAX_AGE": 0,
}}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
