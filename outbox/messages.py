"""Outbox rows for the two kinds of message we publish: Celery tasks (to SQS) and events (to SNS).

Call these inside the transaction that makes the change the message is about:
the row commits with it, and the relay publishes it afterwards.
"""

import base64
import json
import uuid
from typing import Any

from celery import current_app
from django.conf import settings
from django.utils import timezone
from kombu.utils.json import dumps

from outbox.models import OutboxMessage


def enqueue_task(*, task_name: str, kwargs: dict[str, Any], task_id: str = "", queue: str = "") -> OutboxMessage:
    """Add a Celery task message for `task_name(**kwargs)` to the outbox.

    The body is what Celery and kombu's SQS transport would send themselves
    (task protocol 2, JSON, base64), so any worker consumes it as usual.
    """
    queue = queue or settings.SQS_QUEUE_NAME
    task_id = task_id or str(uuid.uuid4())
    message = current_app.amqp.as_task_v2(task_id, task_name, args=(), kwargs=kwargs)
    envelope = {
        "body": base64.b64encode(dumps(message.body).encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": message.headers,
        "properties": {
            **message.properties,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return OutboxMessage.objects.create(
        channel=OutboxMessage.Channel.SQS,
        destination=queue,
        body=base64.b64encode(dumps(envelope).encode()).decode(),
        deduplication_id=task_id,
    )


def enqueue_event(*, event_type: str, event_id: str, data: dict[str, Any], group_id: str = "") -> OutboxMessage:
    """Add an event for the SNS topic to the outbox.

    `event_id` must be stable (derived from what happened, not random), so
    that subscribers can drop the duplicates that at-least-once publishing brings.
    """
    body = {"event_id": event_id, "type": event_type, "occurred_at": timezone.now().isoformat(), "data": data}
    return OutboxMessage.objects.create(
        channel=OutboxMessage.Channel.SNS,
        destination=settings.SNS_TOPIC_ARN,
        body=json.dumps(body),
        attributes={
            "event_id": {"DataType": "String", "StringValue": event_id},
            "event_type": {"DataType": "String", "StringValue": event_type},
        },
        deduplication_id=event_id,
        group_id=group_id,
    )


def stable_event_id(*parts: str) -> str:
    """The same id for the same event, every time it is computed."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)))
