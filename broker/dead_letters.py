"""The dead-letter queue, for operators: look at it, send messages back, empty it."""

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django_celery_results.models import TaskResult

from broker.client import sqs_client
from broker.messages import TaskMessage, task_message_from_body

logger = logging.getLogger(__name__)

# While we page through the DLQ, what we have seen stays hidden this long, so
# each message is read once; then it is made visible again.
PEEK_VISIBILITY_SECONDS = 30
# SQS's limit per receive and per batch call.
BATCH_SIZE = 10


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    first_seen: datetime
    task: TaskMessage
    last_error: str


def dead_letters_list() -> list[DeadLetter]:
    """Every message in the DLQ, without consuming any: they are all visible again afterwards."""
    client = sqs_client()
    letters = list(_receive_all(client, _dead_letter_queue_url()))
    _release(client, _dead_letter_queue_url(), [letter.receipt_handle for letter in letters])
    return letters


def dead_letters_redrive(*, selected: Callable[[DeadLetter], bool] = lambda letter: True) -> int:
    """Move the selected dead letters back to the order queue; return how many moved.

    Each is sent to the order queue, then deleted from the DLQ. A crash in
    between leaves it in both: the consumer is idempotent, so it is applied once.
    The others are made visible again, untouched.
    """
    client = sqs_client()
    dead_letter_url, main_url = _dead_letter_queue_url(), settings.SQS_QUEUE_URLS[settings.SQS_QUEUE_NAME]
    letters = list(_receive_all(client, dead_letter_url))
    moved = 0
    for batch in _batches([letter for letter in letters if selected(letter)]):
        response = client.send_message_batch(
            QueueUrl=main_url,
            Entries=[{"Id": str(index), "MessageBody": letter.body} for index, letter in enumerate(batch)],
        )
        for failure in response.get("Failed", []):
            logger.error("Could not redrive message %s: %s", batch[int(failure["Id"])].message_id, failure)
        sent = [batch[int(entry["Id"])] for entry in response.get("Successful", [])]
        if sent:
            client.delete_message_batch(
                QueueUrl=dead_letter_url,
                Entries=[{"Id": str(i), "ReceiptHandle": letter.receipt_handle} for i, letter in enumerate(sent)],
            )
        moved += len(sent)
    _release(client, dead_letter_url, [letter.receipt_handle for letter in letters if not selected(letter)])
    return moved


def dead_letters_purge() -> int:
    """Delete every message in the DLQ for good; return how many there were (approximately)."""
    client = sqs_client()
    url = _dead_letter_queue_url()
    count = int(
        client.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
            "ApproximateNumberOfMessages"
        ]
    )
    client.purge_queue(QueueUrl=url)
    return count


def _dead_letter_queue_url() -> str:
    return settings.SQS_QUEUE_URLS[settings.SQS_DEAD_LETTER_QUEUE_NAME]


def _receive_all(client, url: str) -> Iterator[DeadLetter]:
    while True:
        messages = client.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=BATCH_SIZE,
            VisibilityTimeout=PEEK_VISIBILITY_SECONDS,
            WaitTimeSeconds=1,
            MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
        ).get("Messages", [])
        if not messages:
            return
        tasks = [task_message_from_body(message["Body"]) for message in messages]
        errors = _last_errors([task.task_id for task in tasks if task.task_id])
        for message, task in zip(messages, tasks, strict=True):
            attributes = message.get("Attributes", {})
            yield DeadLetter(
                message_id=message["MessageId"],
                receipt_handle=message["ReceiptHandle"],
                body=message["Body"],
                receive_count=int(attributes.get("ApproximateReceiveCount", 0)),
                first_seen=datetime.fromtimestamp(int(attributes.get("SentTimestamp", 0)) / 1000, tz=UTC),
                task=task,
                last_error=errors.get(task.task_id, ""),
            )


def _last_errors(task_ids: list[str]) -> dict[str, str]:
    """The recorded failure of each task, as its traceback's last line."""
    failures = TaskResult.objects.filter(task_id__in=task_ids, status="FAILURE").values_list("task_id", "traceback")
    return {task_id: (traceback or "").strip().splitlines()[-1] if traceback else "" for task_id, traceback in failures}


def _release(client, url: str, receipt_handles: list[str]) -> None:
    for batch in _batches(receipt_handles):
        client.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0} for i, handle in enumerate(batch)],
        )


def _batches(items: list) -> Iterator[list]:
    for start in range(0, len(items), BATCH_SIZE):
        yield items[start : start + BATCH_SIZE]
