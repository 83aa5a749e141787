"""A task that does nothing, so that a benchmark can measure what the broker alone costs."""

from celery import shared_task

# Part of the message format on the queue: never rename it.
NOOP_TASK = "broker.noop"


@shared_task(name=NOOP_TASK)
def noop() -> None:
    """Does nothing; idempotent by definition."""
