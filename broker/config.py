"""How the SQS endpoint, the queue URLs and kombu's broker URL fit together.

Plain functions of configuration values (no Django, no network), so that
settings can call them at import time.
"""

from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

# The account id that moto, ElasticMQ and LocalStack put in their queue URLs.
LOCAL_ACCOUNT_ID = "123456789012"


def broker_url(endpoint_url: str) -> str:
    """Return the kombu broker URL for an SQS endpoint ("" means real AWS).

    kombu has no endpoint option: it builds the endpoint from the broker URL's
    host and port. Credentials stay out of the URL, so boto3's standard chain
    (environment, profile, instance role) supplies them.
    """
    if not endpoint_url:
        return "sqs://"
    parts = _parse_endpoint(endpoint_url)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"sqs://{host}:{parts.port}" if parts.port else f"sqs://{host}"


def endpoint_is_secure(endpoint_url: str) -> bool:
    """Real AWS and https endpoints use TLS; kombu needs to be told."""
    return not endpoint_url or _parse_endpoint(endpoint_url).scheme == "https"


def queue_url(*, endpoint_url: str, region: str, account_id: str, name: str) -> str:
    """Return the URL of queue `name`, which kombu's predefined_queues needs up front."""
    base = endpoint_url.rstrip("/") if endpoint_url else f"https://sqs.{region}.amazonaws.com"
    return f"{base}/{account_id}/{name}"


def _parse_endpoint(endpoint_url: str):
    parts = urlsplit(endpoint_url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ImproperlyConfigured(f"AWS_ENDPOINT_URL_SQS must look like http://HOST:PORT, not {endpoint_url!r}")
    return parts
