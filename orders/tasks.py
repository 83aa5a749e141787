"""Celery tasks: thin adapters from a queue message to a service call."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from orders.schemas import parse_order_request
from orders.services import CANCEL_ORDER_TASK, PROCESS_ORDER_TASK, order_cancel, order_process

# Errors that say nothing about the message: a dropped connection, a lock
# timeout, a database restarting. The transaction rolled back, so a retry is
# safe: with exponential backoff from 1 s to at most 30 s, jitter, 5 times.
# Anything else (an invalid payload, a bug) fails at once and is not retried.
RETRY_ON_TRANSIENT_DATABASE_ERRORS = {
    "autoretry_for": (OperationalError, InterfaceError),
    "max_retries": 5,
    "retry_backoff": 1,
    "retry_backoff_max": 30,
    "retry_jitter": True,
}


@shared_task(bind=True, name=PROCESS_ORDER_TASK, **RETRY_ON_TRANSIENT_DATABASE_ERRORS)
def process_order(self, **payload) -> dict:
    """Process one order message; idempotent, so redeliveries are no-ops.

    Retried with backoff on transient database errors only. An invalid payload
    raises InvalidOrderRequest: recorded as a failure, never retried, and
    parked in the dead-letter queue by SQS after maxReceiveCount receives. A
    payload that conflicts with the order's submitted one is recorded as a
    conflict and finishes without applying anything.
    """
    request = parse_order_request(payload)
    return order_process(request=request, task_id=self.request.id).as_dict()


@shared_task(bind=True, name=CANCEL_ORDER_TASK, **RETRY_ON_TRANSIENT_DATABASE_ERRORS)
def cancel_order(self, *, order_id: str) -> dict:
    """Cancel one order; idempotent, so redeliveries are no-ops.

    Retried on transient database errors only; an unknown order_id raises
    UnknownOrder, is recorded as a failure and dead-lettered.
    """
    return order_cancel(order_id=order_id, task_id=self.request.id)
