from django.db import models
from django.utils import timezone


class OutboxMessageQuerySet(models.QuerySet):
    def pending(self) -> "OutboxMessageQuerySet":
        """Not yet published, oldest first."""
        return self.filter(sent_at__isnull=True).order_by("id")

    def due(self, now) -> "OutboxMessageQuerySet":
        """Pending rows not waiting out the backoff of a failed attempt."""
        return self.pending().filter(models.Q(next_attempt_at__isnull=True) | models.Q(next_attempt_at__lte=now))

    def for_destinations(self, destinations) -> "OutboxMessageQuerySet":
        """Rows for these queue names and topic ARNs."""
        return self.filter(destination__in=destinations)

    def sent_before(self, moment) -> "OutboxMessageQuerySet":
        """Published before `moment`: safe to delete once past the retention period."""
        return self.filter(sent_at__lt=moment)


class OutboxMessage(models.Model):
    """A message to publish after the transaction that wrote it commits.

    Written in the same transaction as the change it announces, so the two
    commit together or not at all; the relay publishes it afterwards, at least once.
    """

    class Channel(models.TextChoices):
        SQS = "sqs", "SQS queue"
        SNS = "sns", "SNS topic"

    channel = models.CharField(max_length=3, choices=Channel.choices)
    destination = models.CharField(max_length=512, help_text="The queue name or the topic ARN.")
    body = models.TextField(help_text="Exactly what is published.")
    attributes = models.JSONField(default=dict, blank=True, help_text="SQS/SNS message attributes, by name.")
    deduplication_id = models.CharField(
        max_length=128, blank=True, help_text="Stable id of what the message says (an event id, a task id)."
    )
    group_id = models.CharField(max_length=128, blank=True, help_text="Message group, for FIFO destinations.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="After a failed attempt: not retried before this time."
    )
    last_error = models.TextField(blank=True)

    objects = OutboxMessageQuerySet.as_manager()

    class Meta:
        indexes = [
            # The relay's scan: only unsent rows, so the index stays small.
            models.Index(fields=["id"], condition=models.Q(sent_at__isnull=True), name="outbox_pending"),
            models.Index(fields=["sent_at"], name="outbox_sent_at"),
        ]

    def __str__(self):
        return f"{self.channel}:{self.destination} #{self.pk}"
