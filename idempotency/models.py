from django.db import models
from django.utils import timezone


class IdempotencyKeyQuerySet(models.QuerySet):
    def for_key(self, scope: str, key: str) -> "IdempotencyKeyQuerySet":
        """The record of (scope, key): zero or one, the pair being unique."""
        return self.filter(scope=scope, key=key)


class IdempotencyKey(models.Model):
    """One operation that ran once: its key, the payload it ran with, and what it returned."""

    scope = models.CharField(max_length=100, help_text="Which operation, e.g. orders.process.")
    key = models.CharField(max_length=255, help_text="The idempotency key within the scope, e.g. an order_id.")
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the payload's canonical JSON.")
    payload = models.JSONField()
    result = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = IdempotencyKeyQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="idempotency_key_unique")]

    def __str__(self):
        return f"{self.scope}:{self.key}"


class IdempotencyConflict(models.Model):
    """A request that reused a key with another payload: refused, kept for a person to look at."""

    scope = models.CharField(max_length=100)
    key = models.CharField(max_length=255)
    stored_payload = models.JSONField(help_text="The payload the key first ran with.")
    received_payload = models.JSONField(help_text="The payload that was refused.")
    source = models.CharField(max_length=255, blank=True, help_text="Where it came from: api, or a task id.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["scope", "key"], name="idempotency_conflict_key")]

    def __str__(self):
        return f"{self.scope}:{self.key} conflict"
