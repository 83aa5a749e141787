"""kombu's SQS transport, with two changes: failed receives no longer kill the worker, and acks are batched.

1. kombu 5.7 turns a ReceiveMessage that timed out, could not connect or got
   a 5xx (status 408, 500, 502, 503, 504, or 599 for a network error) into an
   empty list (kombu PR #1064: "don't stop receiving tasks on 503 SQS
   error"), but the SQS channel then calls `.get("Messages")` on it, and the
   worker stops with "Unrecoverable error: AttributeError: 'list' object has
   no attribute 'get'". Measured here: one network blip through a proxy
   stopped a worker for good; real SQS returns the odd 500 or 503 too. This
   channel treats such an answer as a failed receive: it logs it and polls
   again after a backoff that doubles from 0.5 s up to 5 s, instead of dying,
   and instead of spinning while SQS is down (polling_interval is 0).

2. kombu deletes each acked message with its own DeleteMessage, a blocking
   call on the worker's event loop: one request per message, and the loop
   waits for each. This channel collects acked messages and deletes them with
   DeleteMessageBatch, ten at a time, at the latest SQS_ACK_FLUSH_SECONDS after
   the first ack (0 restores kombu's behaviour). Safe because every consumer
   here is idempotent: a delete lost in a crash only means one more delivery,
   which is a no-op. A message is still deleted only after its task finished.
"""

import logging

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from kombu.transport import virtual
from kombu.transport.SQS import Channel as SqsChannel
from kombu.transport.SQS import Transport as SqsTransport

logger = logging.getLogger(__name__)

FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 5.0
# SQS's limit for one DeleteMessageBatch call.
DELETE_BATCH_SIZE = 10


class Channel(SqsChannel):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._receive_backoff: dict[str, float] = {}
        # Queue URL -> receipt handles acked but not deleted yet.
        self._acked: dict[str, list[str]] = {}
        self._flush_timer = None

    # --- 1. failed receives ---------------------------------------------
    # kombu passes (queue URL, queue name, response) here, whatever the names say.
    def _on_messages_ready(self, queue, qname, messages):
        if isinstance(messages, dict):
            self._receive_backoff.pop(qname, None)
            return super()._on_messages_ready(queue, qname, messages)
        backoff = min(self._receive_backoff.get(qname, FIRST_BACKOFF_SECONDS / 2) * 2, MAX_BACKOFF_SECONDS)
        self._receive_backoff[qname] = backoff
        logger.warning("Receiving from %s failed (timeout, network or server error); retrying in %.1fs", qname, backoff)
        return 0

    def _loop1(self, queue, messages_fetched=None):
        backoff = self._receive_backoff.get(queue)
        if backoff and not messages_fetched:
            self.hub.call_later(backoff, self._schedule_queue, queue)
            return
        super()._loop1(queue, messages_fetched)

    # --- 2. batched acks --------------------------------------------------
    def basic_ack(self, delivery_tag, multiple=False):
        flush_after = settings.SQS_ACK_FLUSH_SECONDS
        try:
            delivery_info = self.qos.get(delivery_tag).delivery_info
            receipt_handle = delivery_info["sqs_message"]["ReceiptHandle"]
            queue_url = delivery_info["sqs_queue"]
        except KeyError:
            return super().basic_ack(delivery_tag, multiple)
        if not flush_after:
            return super().basic_ack(delivery_tag, multiple)
        self._acked.setdefault(queue_url, []).append(receipt_handle)
        # Only the bookkeeping of kombu's SQS basic_ack, not its DeleteMessage:
        # the prefetch slot is free at once, the delete follows in a batch.
        virtual.Channel.basic_ack(self, delivery_tag)
        if len(self._acked[queue_url]) >= DELETE_BATCH_SIZE:
            self._flush_acks()
        elif self._flush_timer is None:
            self._flush_timer = self.hub.call_later(flush_after, self._flush_acks)
        return None

    def close(self):
        self._flush_acks()
        super().close()

    def _flush_acks(self):
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        acked, self._acked = self._acked, {}
        for queue_url, receipt_handles in acked.items():
            for start in range(0, len(receipt_handles), DELETE_BATCH_SIZE):
                self._delete_batch(queue_url, receipt_handles[start : start + DELETE_BATCH_SIZE])

    def _delete_batch(self, queue_url: str, receipt_handles: list[str]) -> None:
        entries = [{"Id": str(index), "ReceiptHandle": handle} for index, handle in enumerate(receipt_handles)]
        # The client of the predefined queue with this URL: the message came from it,
        # whatever routing key its sender wrote into it.
        queue = next((name for name, queue in self.predefined_queues.items() if queue["url"] == queue_url), None)
        try:
            response = self.sqs(queue=queue).delete_message_batch(QueueUrl=queue_url, Entries=entries)
        except (BotoCoreError, ClientError) as exc:
            # Not deleted: SQS delivers them again, and the idempotent tasks do nothing.
            logger.warning("Could not delete %d acked message(s) from %s: %s", len(entries), queue_url, exc)
            return
        for failure in response.get("Failed", []):
            logger.warning("Could not delete an acked message from %s: %s", queue_url, failure.get("Message"))


class Transport(SqsTransport):
    Channel = Channel
