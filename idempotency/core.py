"""Run an operation once per idempotency key, however often it is asked for.

    outcome = run_once(scope="orders.cancel", key=order_id, payload=payload, effect=cancel)

In one database transaction, run_once creates the record of (scope, key) on a
unique constraint. Only the call that created it runs `effect`, inside the
same transaction, so the record, the effect's writes and any outbox rows the
effect adds (events, follow-up tasks) commit together or not at all. A later
call with the same payload finds the record and returns the stored result
without running anything. A later call with a different payload is a
conflict: it is recorded (IdempotencyConflict) and refused, never applied.

Concurrent calls with one key cannot both run the effect: the second insert
waits on the unique index and fails once the first commits; the second call
then reads the committed record (READ COMMITTED on PostgreSQL; SQLite
serialises IMMEDIATE transactions). If the effect raises, nothing is kept and
the call can be retried.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from idempotency.fingerprints import fingerprint
from idempotency.models import IdempotencyConflict, IdempotencyKey


@dataclass(frozen=True)
class Outcome:
    # What the effect returned (now, or the first time).
    result: Any
    # True only for the call that ran the effect.
    first: bool
    # True when the payload differed from the stored one: nothing ran.
    conflict: bool = False
    # The payload the key first ran with (differs from this call's on a conflict).
    stored_payload: Any = None


def run_once(*, scope: str, key: str, payload: Any, effect: Callable[[], Any], source: str = "") -> Outcome:
    """Run `effect` once for (scope, key); see the module's docstring for the contract."""
    payload_fingerprint = fingerprint(payload)
    with transaction.atomic():
        record, created = _create_or_find(scope=scope, key=key, fingerprint=payload_fingerprint, payload=payload)
        if created:
            record.result = effect()
            record.save(update_fields=["result"])
            return Outcome(result=record.result, first=True, stored_payload=payload)
        if record.fingerprint != payload_fingerprint:
            record_conflict(
                scope=scope, key=key, stored_payload=record.payload, received_payload=payload, source=source
            )
            return Outcome(result=None, first=False, conflict=True, stored_payload=record.payload)
        return Outcome(result=record.result, first=False, stored_payload=record.payload)


def _create_or_find(*, scope: str, key: str, fingerprint: str, payload: Any) -> tuple[IdempotencyKey, bool]:
    """get_or_create, insert first: the first delivery, the common case, costs no SELECT."""
    try:
        with transaction.atomic():
            return IdempotencyKey.objects.create(scope=scope, key=key, fingerprint=fingerprint, payload=payload), True
    except IntegrityError:
        # Another call created it (and committed: the unique index made us wait for it).
        return IdempotencyKey.objects.for_key(scope, key).get(), False


def record_conflict(*, scope: str, key: str, stored_payload: Any, received_payload: Any, source: str = "") -> None:
    """Keep a refused request for a person to look at (the admin lists them)."""
    IdempotencyConflict.objects.create(
        scope=scope, key=key, stored_payload=stored_payload, received_payload=received_payload, source=source
    )


def stored_payload(*, scope: str, key: str) -> Any | None:
    """The payload (scope, key) first ran with, or None if it never ran."""
    record = IdempotencyKey.objects.for_key(scope, key).only("payload").first()
    return record.payload if record else None
