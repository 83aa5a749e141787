"""boto3 clients for the configured SQS and SNS endpoints, for our own calls (not kombu's)."""

import boto3
from botocore.config import Config
from django.conf import settings


def sqs_client():
    """An SQS client for AWS_ENDPOINT_URL_SQS (real AWS when unset), with short timeouts."""
    return _client("sqs", settings.AWS_ENDPOINT_URL_SQS)


def sns_client():
    """An SNS client for AWS_ENDPOINT_URL_SNS (real AWS when unset), with short timeouts."""
    return _client("sns", settings.AWS_ENDPOINT_URL_SNS)


def _client(service: str, endpoint_url: str):
    return boto3.client(
        service,
        endpoint_url=endpoint_url or None,
        region_name=settings.AWS_DEFAULT_REGION,
        config=Config(**settings.SQS_CLIENT_CONFIG),
    )
