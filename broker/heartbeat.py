"""A visibility heartbeat: SQS must not hand a message to a second worker while the first still holds it.

SQS hides a received message for the queue's visibility timeout, then delivers
it again, whether or not the first worker is done. A task that runs longer than
the timeout is therefore started twice, concurrently. No Python SQS library
extends the timeout of messages in progress, so this consumer step does:

- every third of the queue's visibility timeout, it calls
  ChangeMessageVisibilityBatch for every message the worker holds (reserved,
  waiting for a pool process, or running), setting its timeout anew from now;
- a message leaves the worker's set when its task is acked or rejected, so its
  heartbeat stops with the task;
- it runs in the worker's main process, on the consumer's event loop. If that
  process dies, the beats stop and SQS delivers the messages again after the
  timeout, which is what a crash should do. A task stuck in a pool process is
  kept invisible until the hard time limit kills it (TASK_TIME_LIMIT).

Limits: a beat is a synchronous call on the event loop (short timeouts, at most
one call per ten held messages); a beat that fails is logged and the next one
tries again, so an outage longer than two thirds of the timeout lets SQS
deliver the message again (the idempotent task absorbs it); SQS caps a
message's total invisibility at 12 hours.
"""

import logging

from botocore.exceptions import BotoCoreError, ClientError
from celery import bootsteps
from celery.worker import state
from django.conf import settings

from broker.client import sqs_client

logger = logging.getLogger(__name__)

# SQS's limit for one ChangeMessageVisibilityBatch call.
BATCH_SIZE = 10


class VisibilityHeartbeat(bootsteps.StartStopStep):
    """Consumer step: extends the visibility timeout of every message the worker holds."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self.timer_entry = None
        self.client = None
        self.timeout = settings.SQS_VISIBILITY_TIMEOUT

    def start(self, parent):
        self.client = sqs_client()
        self.timeout = self._queue_visibility_timeout()
        interval = max(1.0, self.timeout / 3)
        logger.info("Visibility heartbeat every %.1fs, extending held messages by %ss", interval, self.timeout)
        self.timer_entry = parent.timer.call_repeatedly(interval, self.beat)

    def stop(self, parent):
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None

    def beat(self):
        held = held_messages()
        for queue_url, receipt_handles in held.items():
            for start in range(0, len(receipt_handles), BATCH_SIZE):
                self._extend(queue_url, receipt_handles[start : start + BATCH_SIZE])

    def _extend(self, queue_url: str, receipt_handles: list[str]) -> None:
        entries = [
            {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": self.timeout}
            for index, handle in enumerate(receipt_handles)
        ]
        try:
            response = self.client.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
        except (BotoCoreError, ClientError) as exc:
            logger.warning("Visibility heartbeat failed for %d message(s): %s", len(entries), exc)
            return
        for failure in response.get("Failed", []):
            # Usually a message acked between the snapshot and the call.
            logger.debug("Visibility not extended for entry %s: %s", failure["Id"], failure.get("Message"))

    def _queue_visibility_timeout(self) -> int:
        """The order queue's own timeout, which rules, rather than what settings expect."""
        url = settings.SQS_QUEUE_URLS[settings.SQS_QUEUE_NAME]
        try:
            attributes = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
            return int(attributes["Attributes"]["VisibilityTimeout"])
        except (BotoCoreError, ClientError, KeyError, ValueError) as exc:
            logger.warning("Could not read the visibility timeout of %s (%s); using the setting", url, exc)
            return settings.SQS_VISIBILITY_TIMEOUT


def held_messages() -> dict[str, list[str]]:
    """Receipt handles of the SQS messages this worker holds, by queue URL."""
    held: dict[str, set[str]] = {}
    # Reserved: waiting for or running in a pool process. Scheduled: held until an ETA or countdown.
    for request in [*state.reserved_requests, *state.scheduled_requests]:
        delivery_info = request.message.delivery_info
        sqs_message = delivery_info.get("sqs_message")
        if sqs_message:
            held.setdefault(delivery_info["sqs_queue"], set()).add(sqs_message["ReceiptHandle"])
    return {queue_url: sorted(handles) for queue_url, handles in held.items()}
