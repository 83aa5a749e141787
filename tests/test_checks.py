"""Unsafe delivery settings stop the web side (system checks) and the worker before they consume."""

import subprocess
import sys

import pytest
from celery import current_app

from broker.checks import check_delivery_settings
from stack import components


def check_ids() -> set[str]:
    return {message.id for message in check_delivery_settings()}


def test_the_project_settings_pass():
    assert check_ids() == set()


@pytest.fixture
def celery_conf():
    """The app's real configuration, restored after the test changes it."""
    conf = current_app.conf
    saved = {key: conf[key] for key in ("task_acks_late", "accept_content", "task_acks_on_failure")}
    yield conf
    conf.update(saved)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"task_acks_late": False}, "broker.E002"),
        ({"accept_content": ["json", "pickle"]}, "broker.E003"),
        ({"task_acks_on_failure": True}, "broker.E004"),
        ({"task_acks_on_failure": None}, "broker.E004"),  # Celery's default: ack failures
    ],
)
def test_each_unsafe_setting_is_an_error(celery_conf, change, error):
    celery_conf.update(change)

    assert check_ids() == {error}


def run_with(argv: list[str], **environment: str) -> subprocess.CompletedProcess:
    env = components.local_environment(**environment)
    return subprocess.run(
        argv, env=env, cwd=components.PROJECT_DIR, capture_output=True, text=True, timeout=120, check=False
    )


UNSAFE_TIMEOUTS = {"SQS_VISIBILITY_TIMEOUT": "10", "TASK_TIME_LIMIT": "10"}


def test_manage_py_refuses_a_visibility_timeout_not_above_the_time_limit():
    result = run_with([sys.executable, "manage.py", "check"], **UNSAFE_TIMEOUTS)

    assert result.returncode != 0
    assert "broker.E001" in result.stderr


def test_worker_refuses_to_start_with_unsafe_settings():
    result = run_with([sys.executable, "-m", "celery", "-A", "project", "worker"], **UNSAFE_TIMEOUTS)

    assert result.returncode != 0
    assert "Refusing to start with unsafe delivery settings" in result.stderr + result.stdout
    assert "broker.E001" in result.stderr + result.stdout


def test_real_aws_without_an_account_id_is_refused():
    result = run_with([sys.executable, "manage.py", "check"], AWS_ENDPOINT_URL_SQS="", AWS_ACCOUNT_ID="")

    assert result.returncode != 0
    assert "broker.E005" in result.stderr
