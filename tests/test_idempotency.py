"""idempotency.run_once, on its own: the reusable part of exactly-once processing."""

import threading

import pytest
from django.db import connection

from idempotency.core import run_once
from idempotency.fingerprints import fingerprint
from idempotency.models import IdempotencyConflict, IdempotencyKey
from outbox.messages import enqueue_event
from outbox.models import OutboxMessage


class Effect:
    """An effect that counts its runs and writes an outbox row, as real effects do."""

    def __init__(self, fail: bool = False):
        self.runs = 0
        self.fail = fail

    def __call__(self):
        self.runs += 1
        enqueue_event(event_type="thing.done", event_id=f"event-{self.runs}", data={})
        if self.fail:
            raise RuntimeError("the effect failed")
        return {"done": self.runs}


def test_fingerprint_ignores_key_order_and_spacing():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_first_call_runs_the_effect_and_stores_its_result(db):
    effect = Effect()

    outcome = run_once(scope="things", key="k1", payload={"n": 1}, effect=effect)

    assert (outcome.first, outcome.conflict, outcome.result) == (True, False, {"done": 1})
    assert IdempotencyKey.objects.get(scope="things", key="k1").result == {"done": 1}
    assert OutboxMessage.objects.count() == 1


def test_repeat_returns_the_stored_result_without_running_anything(db):
    effect = Effect()
    run_once(scope="things", key="k1", payload={"n": 1}, effect=effect)

    outcome = run_once(scope="things", key="k1", payload={"n": 1}, effect=effect)

    assert (outcome.first, outcome.conflict, outcome.result) == (False, False, {"done": 1})
    assert effect.runs == 1
    assert OutboxMessage.objects.count() == 1


def test_same_key_in_another_scope_is_another_operation(db):
    effect = Effect()
    run_once(scope="things", key="k1", payload={"n": 1}, effect=effect)

    assert run_once(scope="other-things", key="k1", payload={"n": 1}, effect=effect).first


def test_same_key_with_another_payload_is_recorded_and_refused(db):
    effect = Effect()
    run_once(scope="things", key="k1", payload={"n": 1}, effect=effect)

    outcome = run_once(scope="things", key="k1", payload={"n": 2}, effect=effect, source="test")

    assert (outcome.first, outcome.conflict, outcome.stored_payload) == (False, True, {"n": 1})
    assert effect.runs == 1
    conflict = IdempotencyConflict.objects.get()
    assert (conflict.stored_payload, conflict.received_payload, conflict.source) == ({"n": 1}, {"n": 2}, "test")


def test_failed_effect_leaves_nothing_behind_and_can_run_again(db):
    with pytest.raises(RuntimeError):
        run_once(scope="things", key="k1", payload={"n": 1}, effect=Effect(fail=True))
    assert not IdempotencyKey.objects.exists()
    assert not OutboxMessage.objects.exists()

    assert run_once(scope="things", key="k1", payload={"n": 1}, effect=Effect()).first


@pytest.mark.django_db(transaction=True)
def test_concurrent_calls_run_the_effect_once():
    threads, effect = 8, Effect()
    barrier = threading.Barrier(threads)
    outcomes, errors = [], []

    def call():
        try:
            barrier.wait()
            outcomes.append(run_once(scope="things", key="raced", payload={"n": 1}, effect=effect))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=call) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
    assert effect.runs == 1
    assert sorted(outcome.first for outcome in outcomes) == [False] * (threads - 1) + [True]
    assert OutboxMessage.objects.count() == 1
