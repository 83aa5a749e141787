"""System checks: a worker or web process with unsafe delivery settings refuses to start.

Django runs them before management commands and the dev server; a worker
runs them at start-up (RefuseUnsafeSettings, added in project/celery.py).
"""

from celery import bootsteps, current_app
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

PICKLE_CONTENT = {"pickle", "application/x-python-serialize"}


def visibility_margin(time_limit: int) -> float:
    """Seconds the visibility timeout must exceed the hard time limit by."""
    return max(1.0, time_limit / 10)


@checks.register("broker")
def check_delivery_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    conf = current_app.conf
    errors = []
    time_limit = conf.task_time_limit
    if time_limit is None or time_limit + visibility_margin(time_limit) >= settings.SQS_VISIBILITY_TIMEOUT:
        errors.append(
            checks.Error(
                f"SQS_VISIBILITY_TIMEOUT ({settings.SQS_VISIBILITY_TIMEOUT}s) must exceed TASK_TIME_LIMIT "
                f"({time_limit}s) by more than {visibility_margin(time_limit or 0):g}s.",
                hint="Otherwise SQS hands a task that is still running to a second worker.",
                id="broker.E001",
            )
        )
    if not settings.AWS_ACCOUNT_ID:
        errors.append(
            checks.Error(
                "AWS_ACCOUNT_ID is not set: the queue URLs cannot be built for AWS.",
                hint="Set AWS_ACCOUNT_ID, or AWS_ENDPOINT_URL_SQS for a local or alternative SQS server.",
                id="broker.E005",
            )
        )
    if not conf.task_acks_late:
        errors.append(
            checks.Error(
                "task_acks_late is off: a worker that dies mid-task loses its message.",
                id="broker.E002",
            )
        )
    accepted = {*conf.accept_content, conf.task_serializer, conf.result_serializer}
    if accepted & PICKLE_CONTENT:
        errors.append(
            checks.Error(
                "Pickle is accepted or used: a message from the queue could run arbitrary code.",
                hint="Use JSON only: accept_content, task_serializer and result_serializer.",
                id="broker.E003",
            )
        )
    if _acks_failures(conf.task_acks_on_failure, conf) or _acks_failures(conf.task_acks_on_timeout, conf):
        errors.append(
            checks.Error(
                "Failed or timed-out tasks are acked: their messages are deleted and never reach the "
                "dead-letter queue.",
                hint="Set task_acks_on_failure and task_acks_on_timeout to False.",
                id="broker.E004",
            )
        )
    return errors


def _acks_failures(flag: bool | None, conf) -> bool:
    # None means "as task_acks_on_failure_or_timeout says", which defaults to True.
    return conf.task_acks_on_failure_or_timeout if flag is None else flag


class RefuseUnsafeSettings(bootsteps.Step):
    """Worker step: a worker with unsafe delivery settings stops before it consumes.

    Celery's Django fix-up runs the system checks at start-up but ignores what
    they find, so the worker runs these itself and raises.
    """

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        errors = [message for message in check_delivery_settings() if message.is_serious()]
        if errors:
            raise ImproperlyConfigured(
                "Refusing to start with unsafe delivery settings:\n" + "\n".join(f"  {error}" for error in errors)
            )
