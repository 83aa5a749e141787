"""The Celery app: `celery -A project worker`."""

import os

from celery import Celery

from broker.checks import RefuseUnsafeSettings
from broker.heartbeat import VisibilityHeartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("project")
# Every Celery setting lives in Django's settings, prefixed CELERY_.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.steps["worker"].add(RefuseUnsafeSettings)
# Keeps held messages invisible while their tasks run (see broker/heartbeat.py).
app.steps["consumer"].add(VisibilityHeartbeat)
