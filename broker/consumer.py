"""The worker's consumer, changed so that no message is silently dropped."""

import logging

from celery.worker.consumer import Consumer
from kombu.utils.encoding import safe_repr

logger = logging.getLogger(__name__)


class DeadLetteringConsumer(Consumer):
    """Rejects a message it cannot decode instead of acking it.

    Celery acks (deletes) a message whose body it cannot decode, such as a
    pickle message when only JSON is accepted: the message is gone and nobody
    can look at it. Rejected, it stays in SQS (kombu does not delete a rejected
    message from a queue with a RedrivePolicy) and lands in the dead-letter
    queue after maxReceiveCount receives. It is never executed either way.
    """

    def on_decode_error(self, message, exc):
        logger.critical(
            "Refusing a message that cannot be decoded (%s); it goes to the dead-letter queue. "
            "content_type=%r content_encoding=%r headers=%s",
            exc,
            message.content_type,
            message.content_encoding,
            safe_repr(message.headers),
        )
        message.reject(requeue=False)
