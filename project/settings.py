"""Django settings, driven by environment variables with safe local defaults.

Every variable is listed in the README. Production sets DJANGO_SECRET_KEY,
DJANGO_ALLOWED_HOSTS, DATABASE_URL and the AWS variables; nothing falls back to
something unsafe (no DEBUG, no wildcard hosts, no eager Celery).
"""

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from broker.config import LOCAL_ACCOUNT_ID, broker_url, endpoint_is_secure, queue_url
from project.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off")
    SECRET_KEY = "insecure-local-development-key"  # noqa: S105 - only ever used with DEBUG on
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_results",
    "broker",
    "idempotency",
    "outbox",
    "orders",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "orders.middleware.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Project-wide overrides, such as the admin index with its link to the queues.
        "DIRS": [BASE_DIR / "project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0, minimum=0),
        # A kept connection that the server dropped is replaced, not used and failed.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # Take the write lock at BEGIN: with Django's default (DEFERRED) two
        # worker processes racing in get_or_create get "database is locked"
        # instead of waiting, and the failed task's order was lost (7 of 200).
        "transaction_mode": "IMMEDIATE",
        # Seconds a writer waits for the lock before giving up.
        "timeout": 20,
        # WAL lets the web process read while a worker writes.
        "init_command": "PRAGMA journal_mode=WAL;",
    }
    # A file, not Django's in-memory test database: worker processes started
    # by the tests must see the same data.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "test-db.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"

# Bodies above this are refused before they are parsed (the API answers 413).
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# --- SQS --------------------------------------------------------------------
AWS_ENDPOINT_URL_SQS = env_str("AWS_ENDPOINT_URL_SQS")
AWS_DEFAULT_REGION = env_str("AWS_DEFAULT_REGION", "us-east-1")
# Queue URLs carry the account id; local SQS servers all use the same fake one.
# Required on AWS (system check broker.E005).
AWS_ACCOUNT_ID = env_str("AWS_ACCOUNT_ID", LOCAL_ACCOUNT_ID if AWS_ENDPOINT_URL_SQS else "")

SQS_QUEUE_PREFIX = env_str("SQS_QUEUE_PREFIX")
SQS_QUEUE_NAME = f"{SQS_QUEUE_PREFIX}orders"
SQS_DEAD_LETTER_QUEUE_NAME = f"{SQS_QUEUE_PREFIX}orders-dlq"
SQS_QUEUE_URLS = {
    name: queue_url(
        endpoint_url=AWS_ENDPOINT_URL_SQS,
        region=AWS_DEFAULT_REGION,
        account_id=AWS_ACCOUNT_ID,
        name=name,
    )
    for name in (SQS_QUEUE_NAME, SQS_DEAD_LETTER_QUEUE_NAME)
}
SQS_VISIBILITY_TIMEOUT = env_int("SQS_VISIBILITY_TIMEOUT", 300, minimum=1)
SQS_MAX_RECEIVE_COUNT = env_int("SQS_MAX_RECEIVE_COUNT", 5, minimum=1)
# Dead letters are kept for SQS's maximum, 14 days, so an operator can redrive them.
SQS_DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600
# Acked messages are deleted in batches of ten, at the latest this many seconds
# after the first ack (broker/transport.py); 0 deletes each one at once.
SQS_ACK_FLUSH_SECONDS = env_float("SQS_ACK_FLUSH_SECONDS", 0.1)
# Short timeouts and few retries for our own boto3 calls and for kombu's
# synchronous ones (send, delete): a frozen endpoint otherwise holds a request
# for botocore's default 60 s read timeout, times its retries.
SQS_CLIENT_CONFIG = {
    "connect_timeout": env_float("SQS_CONNECT_TIMEOUT", 3),
    "read_timeout": env_float("SQS_READ_TIMEOUT", 10),
    "retries": {"mode": "standard", "max_attempts": 3},
}

# --- SNS: order events ------------------------------------------------------
# Local SQS servers (moto, LocalStack) serve SNS on the same endpoint.
AWS_ENDPOINT_URL_SNS = env_str("AWS_ENDPOINT_URL_SNS", AWS_ENDPOINT_URL_SQS)
SNS_TOPIC_NAME = f"{SQS_QUEUE_PREFIX}order-events"
SNS_TOPIC_ARN = f"arn:aws:sns:{AWS_DEFAULT_REGION}:{AWS_ACCOUNT_ID}:{SNS_TOPIC_NAME}"

# --- Outbox relay (`manage.py relay`) -----------------------------------------
# Sent rows are kept this long (for the admin and for investigations), then deleted.
OUTBOX_RETENTION_SECONDS = env_int("OUTBOX_RETENTION_SECONDS", 7 * 24 * 3600, minimum=0)
# Rows one relay claims per transaction (published ten per SQS/SNS call).
OUTBOX_RELAY_BATCH_SIZE = env_int("OUTBOX_RELAY_BATCH_SIZE", 100, minimum=1)
# Seconds an idle relay waits before it looks for new rows again.
OUTBOX_RELAY_IDLE_SECONDS = env_float("OUTBOX_RELAY_IDLE_SECONDS", 0.2)
# Test-only: seconds between publishing a batch and marking it sent, so a test
# can kill the relay in between. Zero in any real deployment.
OUTBOX_TEST_DELAY_AFTER_PUBLISH = env_float("OUTBOX_TEST_DELAY_AFTER_PUBLISH", 0)

# --- Celery (https://docs.celeryq.dev/en/stable/userguide/configuration.html)
# Must stay below SQS_VISIBILITY_TIMEOUT with a margin (system check broker.E001).
TASK_TIME_LIMIT = env_int("TASK_TIME_LIMIT", 240, minimum=1)

CELERY_BROKER_URL = broker_url(AWS_ENDPOINT_URL_SQS)
# kombu's SQS transport, with a failed receive no longer stopping the worker.
CELERY_BROKER_TRANSPORT = "broker.transport:Transport"
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "region": AWS_DEFAULT_REGION,
    "is_secure": endpoint_is_secure(AWS_ENDPOINT_URL_SQS),
    # Known queues: no ListQueues/CreateQueue at start-up, and kombu never
    # creates a queue without its dead-letter policy. `setup_queues` makes them.
    "predefined_queues": {SQS_QUEUE_NAME: {"url": SQS_QUEUE_URLS[SQS_QUEUE_NAME]}},
    # Long polling: an idle worker makes one request per 20 s (SQS's maximum).
    "wait_time_seconds": 20,
    # kombu's default of 1 s is added after every empty poll and capped a
    # prefork worker at about 2 tasks/s; long polling already paces the loop.
    "polling_interval": 0,
    "client-config": SQS_CLIENT_CONFIG,
}
CELERY_TASK_DEFAULT_QUEUE = SQS_QUEUE_NAME
# Ack after the task ran, not when it was received: a worker that dies
# mid-task leaves the message in SQS, which redelivers it.
CELERY_TASK_ACKS_LATE = True
# A pool child killed mid-task (SIGKILL, OOM) returns its message to the queue.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A failed or timed-out task is rejected, not acked, so SQS redelivers it and
# its RedrivePolicy parks it in the dead-letter queue after maxReceiveCount.
# With the defaults a failure is acked and deleted: it can never reach the DLQ.
CELERY_TASK_ACKS_ON_FAILURE = False
CELERY_TASK_ACKS_ON_TIMEOUT = False
# Reserve one message per pool process by default: a crash delays every
# reserved message by a visibility timeout. The heartbeat keeps reserved
# messages invisible while they wait, so a higher value is safe, and lets one
# ReceiveMessage fetch several messages (see BENCHMARKS.md).
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("WORKER_PREFETCH_MULTIPLIER", 1, minimum=1)
# JSON only: never unpickle what comes off a queue.
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_ACCEPT_CONTENT = ["json"]
# Undecodable messages (pickle, garbage) are rejected into the dead-letter
# queue instead of being acked and lost.
CELERY_WORKER_CONSUMER = "broker.consumer:DeadLetteringConsumer"
# Results go to the database, where admins read them (django-celery-results).
CELERY_RESULT_BACKEND = "django-db"
# Store task name, args and worker with each result, for the admin.
CELERY_RESULT_EXTENDED = True
# Hard limit: the pool child is killed. It must stay below the visibility timeout.
CELERY_TASK_TIME_LIMIT = TASK_TIME_LIMIT
# SQS has no broadcast: remote control and events would need fanout queues.
CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
CELERY_WORKER_SEND_TASK_EVENTS = False
# SQS receipt handles outlive a broker reconnect, so running tasks may finish
# and ack; cancelling them would only cost a redelivery.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A publish from a web request gives up after about a second, so the view can
# answer 503 instead of hanging while SQS is unreachable.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}
# Never run tasks inline: a test of delivery must go through SQS.
CELERY_TASK_ALWAYS_EAGER = False

# --- Orders -----------------------------------------------------------------
# Test-only: seconds a worker sleeps inside the order transaction, so fault
# tests can kill it mid-task. Zero in any real deployment.
ORDERS_TEST_PROCESSING_DELAY = env_float("ORDERS_TEST_PROCESSING_DELAY", 0)
