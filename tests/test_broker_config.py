"""The pure functions that turn AWS_ENDPOINT_URL_SQS into kombu's broker URL and queue URLs."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from broker.config import broker_url, endpoint_is_secure, queue_url


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("", "sqs://"),
        ("http://127.0.0.1:4566", "sqs://127.0.0.1:4566"),
        ("https://sqs.example.test", "sqs://sqs.example.test"),
        ("http://[::1]:9324/", "sqs://[::1]:9324"),
    ],
)
def test_broker_url_carries_the_endpoint_host_and_port(endpoint, expected):
    assert broker_url(endpoint) == expected


@pytest.mark.parametrize("endpoint", ["127.0.0.1:4566", "ftp://host", "http://"])
def test_malformed_endpoint_is_refused(endpoint):
    with pytest.raises(ImproperlyConfigured, match="AWS_ENDPOINT_URL_SQS"):
        broker_url(endpoint)


def test_only_plain_http_endpoints_are_insecure():
    assert endpoint_is_secure("")
    assert endpoint_is_secure("https://sqs.example.test")
    assert not endpoint_is_secure("http://127.0.0.1:4566")


def test_queue_url_on_a_local_endpoint_and_on_aws():
    local = queue_url(endpoint_url="http://127.0.0.1:4566/", region="eu-west-1", account_id="1", name="orders")
    aws = queue_url(endpoint_url="", region="eu-west-1", account_id="210987654321", name="orders")

    assert local == "http://127.0.0.1:4566/1/orders"
    assert aws == "https://sqs.eu-west-1.amazonaws.com/210987654321/orders"
