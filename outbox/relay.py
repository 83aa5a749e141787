"""The relay: publishes outbox rows after their transaction committed, and marks them sent.

Rows are claimed with SELECT ... FOR UPDATE SKIP LOCKED, so several relays can
run at once on PostgreSQL without publishing a row twice in the normal case.
A relay killed after publishing and before its commit leaves the rows
unmarked: they are published again, and the idempotent consumers absorb the
copies. Each destination is claimed on its own and a failed row backs off on
its own, so a failing topic cannot hold up the order queue. (SQLite has no
row locks: there the relay publishes outside a transaction, so as not to hold
the database, and two relays may publish a row twice.)
"""

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection, transaction
from django.db.models import F
from django.utils import timezone

from broker.client import sns_client, sqs_client
from outbox.models import OutboxMessage

logger = logging.getLogger(__name__)

# SQS SendMessageBatch and SNS PublishBatch take at most ten entries.
BATCH_SIZE = 10
MAX_BACKOFF_SECONDS = 30
# A row that failed is retried after 1, 2, 4 ... seconds, at most this long.
ROW_BACKOFF_MAX_SECONDS = 300
CLEANUP_EVERY_SECONDS = 60


@dataclass(frozen=True)
class RelayResult:
    published: int
    failed: int


class Publisher:
    """Batched publishing of outbox rows, with one client per service."""

    def __init__(self):
        self.sqs = sqs_client()
        self.sns = sns_client()

    def publish(self, rows: list[OutboxMessage]) -> tuple[list[int], dict[int, str]]:
        """Publish `rows`; return the ids published and, by id, why the others were not."""
        groups: dict[tuple[str, str], list[OutboxMessage]] = defaultdict(list)
        for row in rows:
            groups[(row.channel, row.destination)].append(row)
        published, errors = [], {}
        for (channel, destination), group in groups.items():
            for start in range(0, len(group), BATCH_SIZE):
                batch = group[start : start + BATCH_SIZE]
                try:
                    response = self._send(channel, destination, batch)
                except (BotoCoreError, ClientError) as exc:
                    errors.update((row.pk, str(exc)) for row in batch)
                    continue
                published += [int(entry["Id"]) for entry in response.get("Successful", [])]
                for failure in response.get("Failed", []):
                    errors[int(failure["Id"])] = failure.get("Message", failure["Code"])
        return published, errors

    def _send(self, channel: str, destination: str, batch: list[OutboxMessage]) -> dict:
        body_field = "MessageBody" if channel == OutboxMessage.Channel.SQS else "Message"
        entries = [{"Id": str(row.pk), body_field: row.body, **_attributes(row), **_fifo(row)} for row in batch]
        if channel == OutboxMessage.Channel.SQS:
            return self.sqs.send_message_batch(QueueUrl=settings.SQS_QUEUE_URLS[destination], Entries=entries)
        return self.sns.publish_batch(TopicArn=destination, PublishBatchRequestEntries=entries)


def relay_batch(publisher: Publisher, *, limit: int) -> RelayResult:
    """Publish up to `limit` due rows per destination and mark them sent.

    Each destination (the order queue, the events topic) is claimed on its
    own, so one that keeps failing cannot starve the others; a row that failed
    waits out a backoff of its own (ROW_BACKOFF) before it is tried again.
    """
    results = [_relay_destination(publisher, destination, limit=limit) for destination in known_destinations()]
    return RelayResult(
        published=sum(result.published for result in results), failed=sum(result.failed for result in results)
    )


def _relay_destination(publisher: Publisher, destination: str, *, limit: int) -> RelayResult:
    due = OutboxMessage.objects.due(timezone.now()).for_destinations([destination])
    if connection.features.has_select_for_update_skip_locked:
        # PostgreSQL: the row locks keep other relays off these rows while we publish.
        with transaction.atomic():
            rows = list(due.select_for_update(skip_locked=True)[:limit])
            return _publish_and_mark(publisher, rows)
    # SQLite has no row locks: a transaction would hold the whole database while
    # we publish. Publish first, mark after; two relays there may publish a row
    # twice, which the consumers absorb.
    return _publish_and_mark(publisher, list(due[:limit]))


def _publish_and_mark(publisher: Publisher, rows: list[OutboxMessage]) -> RelayResult:
    if not rows:
        return RelayResult(published=0, failed=0)
    published, errors = publisher.publish(rows)
    _pause_for_fault_tests()
    now = timezone.now()
    OutboxMessage.objects.filter(pk__in=published).update(sent_at=now, attempts=F("attempts") + 1)
    attempts = {row.pk: row.attempts + 1 for row in rows}
    for pk, error in errors.items():
        OutboxMessage.objects.filter(pk=pk).update(
            attempts=F("attempts") + 1, last_error=error[:2000], next_attempt_at=now + _row_backoff(attempts[pk])
        )
    if errors:
        first_error = next(iter(errors.values()))
        logger.warning("Outbox: %d published, %d not (first error: %s)", len(published), len(errors), first_error)
    return RelayResult(published=len(published), failed=len(errors))


def _row_backoff(attempts: int) -> timedelta:
    """1 s after the first failure, doubling, at most ROW_BACKOFF_MAX_SECONDS."""
    return timedelta(seconds=min(2 ** (attempts - 1), ROW_BACKOFF_MAX_SECONDS))


def known_destinations() -> list[str]:
    """This environment's queues and topic: a relay leaves rows for others (another SQS_QUEUE_PREFIX) alone."""
    return [*settings.SQS_QUEUE_URLS, settings.SNS_TOPIC_ARN]


def outbox_cleanup() -> int:
    """Delete rows sent longer ago than OUTBOX_RETENTION_SECONDS; return how many."""
    cutoff = timezone.now() - timedelta(seconds=settings.OUTBOX_RETENTION_SECONDS)
    deleted, _ = OutboxMessage.objects.sent_before(cutoff).delete()
    return deleted


def relay_forever(stop: threading.Event) -> None:
    """Relay until `stop` is set: at once while there is a backlog, with backoff while publishing fails."""
    publisher = Publisher()
    backoff = 0.0
    next_cleanup = 0.0
    while not stop.is_set():
        try:
            if time.monotonic() >= next_cleanup:
                if deleted := outbox_cleanup():
                    logger.info("Outbox: deleted %d sent row(s) past retention", deleted)
                next_cleanup = time.monotonic() + CLEANUP_EVERY_SECONDS
            result = relay_batch(publisher, limit=settings.OUTBOX_RELAY_BATCH_SIZE)
        except (OperationalError, InterfaceError) as exc:
            # The database went away; nothing was marked, so nothing is lost.
            logger.warning("Outbox relay: database unavailable (%s)", exc)
            close_old_connections()
            result = RelayResult(published=0, failed=1)
        if result.failed and not result.published:
            backoff = min(max(backoff * 2, 0.5), MAX_BACKOFF_SECONDS)
            stop.wait(backoff)
        elif result.published + result.failed < settings.OUTBOX_RELAY_BATCH_SIZE:
            backoff = 0.0
            stop.wait(settings.OUTBOX_RELAY_IDLE_SECONDS)


def _attributes(row: OutboxMessage) -> dict:
    return {"MessageAttributes": row.attributes} if row.attributes else {}


def _fifo(row: OutboxMessage) -> dict:
    if not row.destination.endswith(".fifo"):
        return {}
    return {"MessageDeduplicationId": row.deduplication_id, "MessageGroupId": row.group_id or "default"}


def _pause_for_fault_tests() -> None:
    # Widens the window between publishing and marking, so a test can kill the relay in it.
    if settings.OUTBOX_TEST_DELAY_AFTER_PUBLISH:
        time.sleep(settings.OUTBOX_TEST_DELAY_AFTER_PUBLISH)
