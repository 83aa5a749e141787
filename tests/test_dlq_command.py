"""`manage.py dlq`: list without consuming, redrive all or some, purge with confirmation."""

import io

import pytest
from celery import current_app
from django.core.management import CommandError, call_command
from django_celery_results.models import TaskResult

from orders.services import PROCESS_ORDER_TASK
from tests.conftest import queue_depth


def visible(sqs, url: str) -> int:
    return int(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
            "ApproximateNumberOfMessages"
        ]
    )


@pytest.fixture
def dead_letters(sqs, empty_queues, db):
    """Three messages in the DLQ: two order tasks (one with a recorded failure) and a body that is no task."""
    failed = current_app.send_task(PROCESS_ORDER_TASK, kwargs={"order_id": "dead-1", "item": "X", "quantity": 0})
    current_app.send_task(PROCESS_ORDER_TASK, kwargs={"order_id": "dead-2", "item": "X", "quantity": 1})
    for message in sqs.receive_message(QueueUrl=empty_queues["main"], MaxNumberOfMessages=10, WaitTimeSeconds=2)[
        "Messages"
    ]:
        sqs.send_message(QueueUrl=empty_queues["dead_letter"], MessageBody=message["Body"])
        sqs.delete_message(QueueUrl=empty_queues["main"], ReceiptHandle=message["ReceiptHandle"])
    sqs.send_message(QueueUrl=empty_queues["dead_letter"], MessageBody="garbage")
    TaskResult.objects.create(
        task_id=failed.id, status="FAILURE", traceback="Traceback...\nInvalidOrderRequest: quantity: too small"
    )
    return empty_queues


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("dlq", *args, stdout=out)
    return out.getvalue()


def test_list_shows_each_dead_letter_and_consumes_none(sqs, dead_letters):
    output = run("list")

    assert "3 dead letter(s)" in output
    assert "order_id=dead-1" in output and "order_id=dead-2" in output
    assert f"task={PROCESS_ORDER_TASK}" in output
    assert "(not a task message)" in output
    assert "last error: InvalidOrderRequest: quantity: too small" in output
    assert "receives=" in output
    assert visible(sqs, dead_letters["dead_letter"]) == 3


def test_redrive_selected_order_moves_only_it(sqs, dead_letters):
    output = run("redrive", "--order-id", "dead-2")

    assert "1 message(s) moved" in output
    assert visible(sqs, dead_letters["dead_letter"]) == 2
    assert queue_depth(sqs, dead_letters["main"]) == 1
    assert "order_id=dead-2" not in run("list")


def test_redrive_all(sqs, dead_letters):
    assert "3 message(s) moved" in run("redrive")
    assert queue_depth(sqs, dead_letters["dead_letter"]) == 0
    assert queue_depth(sqs, dead_letters["main"]) == 3


def test_purge_asks_first(sqs, dead_letters, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("no\n"))
    with pytest.raises(CommandError, match="Nothing purged"):
        run("purge")
    assert visible(sqs, dead_letters["dead_letter"]) == 3

    assert "Purged about 3" in run("purge", "--yes")
    assert queue_depth(sqs, dead_letters["dead_letter"]) == 0
