"""Creating the order queue and its dead-letter queue, and keeping them up to date."""

import json
import logging
from dataclasses import dataclass

from botocore.exceptions import ClientError
from django.conf import settings

from broker.client import sns_client, sqs_client

logger = logging.getLogger(__name__)

_QUEUE_EXISTS_CODES = {"QueueAlreadyExists", "QueueNameExists", "AWS.SimpleQueueService.QueueNameExists"}


@dataclass(frozen=True)
class QueueState:
    name: str
    url: str
    attributes: dict[str, str]
    # False when the server's URL is not the one settings expect (wrong account id?).
    url_matches_settings: bool


def queues_ensure() -> list[QueueState]:
    """Create the dead-letter queue and the order queue, or update their attributes.

    Idempotent: run again, it brings existing queues to the configured
    visibility timeout and RedrivePolicy. Safe to run from several places at once.
    """
    client = sqs_client()
    dead_letter = _queue_ensure(
        client,
        name=settings.SQS_DEAD_LETTER_QUEUE_NAME,
        attributes={"MessageRetentionPeriod": str(settings.SQS_DEAD_LETTER_RETENTION_SECONDS)},
    )
    dead_letter_arn = client.get_queue_attributes(QueueUrl=dead_letter.url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    main = _queue_ensure(
        client,
        name=settings.SQS_QUEUE_NAME,
        attributes={
            "VisibilityTimeout": str(settings.SQS_VISIBILITY_TIMEOUT),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": str(settings.SQS_MAX_RECEIVE_COUNT)}
            ),
        },
    )
    return [main, dead_letter]


def topic_ensure() -> str:
    """Create the order-events SNS topic (CreateTopic is idempotent); return its ARN."""
    name = settings.SNS_TOPIC_NAME
    attributes = {"FifoTopic": "true", "ContentBasedDeduplication": "false"} if name.endswith(".fifo") else {}
    arn = sns_client().create_topic(Name=name, Attributes=attributes)["TopicArn"]
    if arn != settings.SNS_TOPIC_ARN:
        logger.warning("SNS returned %s for topic %s, but settings use %s", arn, name, settings.SNS_TOPIC_ARN)
    return arn


def _queue_ensure(client, *, name: str, attributes: dict[str, str]) -> QueueState:
    try:
        url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    except ClientError as exc:
        # It exists with other attributes: CreateQueue refuses to change them.
        if exc.response["Error"]["Code"] not in _QUEUE_EXISTS_CODES:
            raise
        url = client.get_queue_url(QueueName=name)["QueueUrl"]
    client.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    current = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    expected_url = settings.SQS_QUEUE_URLS[name]
    if url != expected_url:
        logger.warning("SQS returned %s for queue %s, but settings use %s", url, name, expected_url)
    return QueueState(name=name, url=url, attributes=current, url_matches_settings=url == expected_url)


@dataclass(frozen=True)
class QueueDepth:
    name: str
    url: str
    # Waiting to be received.
    visible: int
    # Received by a worker, not yet deleted (acked) or returned.
    in_flight: int
    # Sent with a delay (a retry's countdown) that has not passed yet.
    delayed: int


def queue_depths() -> list[QueueDepth]:
    """How many messages the order queue and the dead-letter queue hold (SQS's approximate counts)."""
    client = sqs_client()
    depths = []
    for name in (settings.SQS_QUEUE_NAME, settings.SQS_DEAD_LETTER_QUEUE_NAME):
        url = settings.SQS_QUEUE_URLS[name]
        attributes = client.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        depths.append(
            QueueDepth(
                name=name,
                url=url,
                visible=int(attributes["ApproximateNumberOfMessages"]),
                in_flight=int(attributes["ApproximateNumberOfMessagesNotVisible"]),
                delayed=int(attributes["ApproximateNumberOfMessagesDelayed"]),
            )
        )
    return depths
