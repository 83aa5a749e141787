"""Poison and malformed messages that bypass the API: never retried forever, never lost,
parked in the dead-letter queue, and the messages behind them keep flowing."""

import base64
import json

import pytest
from celery import current_app
from django_celery_results.models import TaskResult

from orders.models import Order
from orders.services import PROCESS_ORDER_TASK
from tests.conftest import queue_depth, wait_until
from tests.test_delivery import REDELIVERY_TIMEOUT, post_order, wait_for_empty_queue, wait_for_orders

pytestmark = pytest.mark.worker


def corrupt_compression(sqs, queue_url: str) -> None:
    """Turn the one message in the queue into one whose body cannot be decompressed."""
    message = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=5)["Messages"][0]
    envelope = json.loads(base64.b64decode(message["Body"]))
    envelope["headers"]["compression"] = "application/x-gzip"
    sqs.send_message(QueueUrl=queue_url, MessageBody=base64.b64encode(json.dumps(envelope).encode()).decode())
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def test_poison_and_malformed_messages_are_dead_lettered_while_good_ones_flow(
    client, products, relay, start_worker, sqs, empty_queues
):
    # Given, in the queue: a message that cannot be decompressed, a body that is
    # not a task message at all, a task nobody knows, wrong argument types, an
    # invalid payload, and good orders mixed in.
    current_app.send_task(PROCESS_ORDER_TASK, kwargs={"order_id": "gzip", "item": "WIDGET", "quantity": 1})
    corrupt_compression(sqs, empty_queues["main"])
    sqs.send_message(QueueUrl=empty_queues["main"], MessageBody="this is not a task message {")
    unknown = current_app.send_task("orders.no_such_task", kwargs={"order_id": "unknown"})
    post_order(client, "good-1")
    wrong_types = current_app.send_task(PROCESS_ORDER_TASK, kwargs={"order_id": 7, "item": ["W"], "quantity": "x"})
    invalid = current_app.send_task(PROCESS_ORDER_TASK, kwargs={"order_id": "bad", "item": "WIDGET", "quantity": 0})
    post_order(client, "good-2")

    worker = start_worker()

    # Then the good orders are processed right away.
    wait_for_orders(2)
    # And every bad message ends in the DLQ after maxReceiveCount (2) receives, not before.
    wait_until(
        lambda: queue_depth(sqs, empty_queues["dead_letter"]) == 5,
        timeout=REDELIVERY_TIMEOUT,
        message="five bad messages in the dead-letter queue",
    )
    wait_for_empty_queue(sqs, empty_queues["main"])
    assert sorted(Order.objects.values_list("order_id", flat=True)) == ["good-1", "good-2"]
    # Task-level failures are recorded with a readable reason.
    results = {result.task_id: result for result in TaskResult.objects.filter(status="FAILURE")}
    assert "quantity" in results[invalid.id].result
    assert "order_id" in results[wrong_types.id].result and "item" in results[wrong_types.id].result
    assert "NotRegistered" in results[unknown.id].result
    log = worker.log_text()
    assert "cannot be decoded" in log
    assert "unknown message" in log.lower()
