"""Reading Celery task messages as they sit in SQS, for operators.

kombu wraps each message: the SQS body is base64 of a JSON envelope whose
headers name the task and id, and whose body (base64 again) holds
[args, kwargs, embed]. Anything else is shown as what it is: not a task message.
"""

import base64
import binascii
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class TaskMessage:
    task: str
    task_id: str
    # The idempotency key, when the task takes one (our tasks' order_id).
    order_id: str
    content_type: str


NOT_A_TASK = TaskMessage(task="(not a task message)", task_id="", order_id="", content_type="")


def task_message_from_body(body: str) -> TaskMessage:
    """What an SQS message body says about its task, as far as it can be read."""
    try:
        envelope = json.loads(base64.b64decode(body, validate=True))
        headers = envelope["headers"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        return NOT_A_TASK
    if not isinstance(headers, dict):
        return NOT_A_TASK
    content_type = str(envelope.get("content-type", ""))
    return TaskMessage(
        task=str(headers.get("task", "?")),
        task_id=str(headers.get("id", "")),
        order_id=_order_id(envelope) if content_type == "application/json" else "",
        content_type=content_type,
    )


def _order_id(envelope: dict) -> str:
    try:
        payload = json.loads(base64.b64decode(envelope["body"]))
        kwargs = payload[1]
    except (binascii.Error, ValueError, TypeError, KeyError, IndexError):
        return ""
    order_id = kwargs.get("order_id", "") if isinstance(kwargs, dict) else ""
    return str(order_id)
