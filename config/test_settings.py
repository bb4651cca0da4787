"""The test suite's settings (pyproject.toml): production's, DEBUG off, but for what the test client needs."""
from config.settings import *  # noqa: F403

# The test client and the browser tests' live server speak plain HTTP: a redirect to https would answer
# every request. tests/test_production_settings.py checks the production value in a process of its own.
SECURE_SSL_REDIRECT = False

# Tests make users by the dozen and the login tests hash every attempt: PBKDF2, slow on purpose, would
# spend most of a second on each. MD5 is fast, and fit only for throwaway test passwords.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The suite runs no collectstatic (tests/test_deploy.py does, for the web process as deployed): static files
# are looked up where they are when asked for, as under DEBUG.
WHITENOISE_AUTOREFRESH = True

# The test suite's own Django tasks (tests/jobs/django_tasks.py), in no installed app.
TRACKED_TASK_MODULES = ["tests.jobs.django_tasks"]
