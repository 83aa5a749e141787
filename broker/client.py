"""boto3 clients for the configured SQS endpoint, for our own calls (not kombu's)."""

import boto3
from botocore.config import Config
from django.conf import settings


def sqs_client():
    """An SQS client for AWS_ENDPOINT_URL_SQS (real AWS when unset), with short timeouts."""
    return boto3.client(
        "sqs",
        endpoint_url=settings.AWS_ENDPOINT_URL_SQS or None,
        region_name=settings.AWS_DEFAULT_REGION,
        config=Config(**settings.SQS_CLIENT_CONFIG),
    )
