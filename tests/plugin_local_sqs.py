"""Starts a local SQS server before Django reads its settings.

Settings build the broker URL and queue URLs from AWS_ENDPOINT_URL_SQS when
they are imported, and pytest-django imports them while pytest starts, before
any fixture runs. So this plugin (loaded with `-p`, see pyproject.toml) starts
the server in the earliest hook and sets the environment that settings, and
the worker processes the tests start, read.
"""

import os
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest

from stack import components

local_sqs_key = pytest.StashKey[tuple]()

# Short timeouts keep fault tests fast: a killed task's message returns after
# SQS_VISIBILITY_TIMEOUT seconds, a poison message reaches the DLQ after
# SQS_MAX_RECEIVE_COUNT receives.
TEST_ENVIRONMENT = {
    "DJANGO_DEBUG": "false",
    "SQS_QUEUE_PREFIX": "test-",
    "SQS_VISIBILITY_TIMEOUT": "6",
    "TASK_TIME_LIMIT": "4",
    "SQS_MAX_RECEIVE_COUNT": "2",
    "ORDERS_TEST_PROCESSING_DELAY": "0",
    **components.LOCAL_AWS_ENVIRONMENT,
}


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    log_dir = Path(tempfile.mkdtemp(prefix="orders-tests-"))
    server, endpoint = components.sqs_server(log_dir=log_dir)
    early_config.stash[local_sqs_key] = (server, endpoint, log_dir)
    os.environ.update(TEST_ENVIRONMENT)
    os.environ["AWS_ENDPOINT_URL_SQS"] = endpoint
    # Generated per run: no secret in the repository, and workers inherit it.
    os.environ["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(32)


def pytest_sessionfinish(session, exitstatus):
    server, _, log_dir = session.config.stash[local_sqs_key]
    server.stop()
    if exitstatus == 0:
        shutil.rmtree(log_dir, ignore_errors=True)
    else:
        print(f"\nLogs of the local SQS server and workers: {log_dir}")


@pytest.fixture(scope="session")
def local_sqs(pytestconfig):
    """(server process, endpoint URL, log directory) of the local SQS server."""
    return pytestconfig.stash[local_sqs_key]
