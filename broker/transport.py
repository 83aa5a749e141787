"""kombu's SQS transport, with a fix for failed receives that otherwise kill the worker.

kombu 5.7 turns a ReceiveMessage that timed out, could not connect or got a
5xx (status 408, 500, 502, 503, 504, or 599 for a network error) into an empty
list (kombu PR #1064: "don't stop receiving tasks on 503 SQS error"), but the
SQS channel then calls `.get("Messages")` on it, and the worker stops with
"Unrecoverable error: AttributeError: 'list' object has no attribute 'get'".
Measured here: one network blip through a proxy stopped a worker for good;
real SQS returns the odd 500 or 503 too.

This channel treats such an answer as a failed receive: it logs it and polls
again after a backoff that doubles from 0.5 s up to 5 s, instead of dying, and
instead of spinning while SQS is down (polling_interval is 0).
"""

import logging

from kombu.transport.SQS import Channel as SqsChannel
from kombu.transport.SQS import Transport as SqsTransport

logger = logging.getLogger(__name__)

FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 5.0


class Channel(SqsChannel):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._receive_backoff: dict[str, float] = {}

    # kombu passes (queue URL, queue name, response) here, whatever the names say.
    def _on_messages_ready(self, queue, qname, messages):
        if isinstance(messages, dict):
            self._receive_backoff.pop(qname, None)
            return super()._on_messages_ready(queue, qname, messages)
        backoff = min(self._receive_backoff.get(qname, FIRST_BACKOFF_SECONDS / 2) * 2, MAX_BACKOFF_SECONDS)
        self._receive_backoff[qname] = backoff
        logger.warning("Receiving from %s failed (timeout, network or server error); retrying in %.1fs", qname, backoff)
        return 0

    def _loop1(self, queue, messages_fetched=None):
        backoff = self._receive_backoff.get(queue)
        if backoff and not messages_fetched:
            self.hub.call_later(backoff, self._schedule_queue, queue)
            return
        super()._loop1(queue, messages_fetched)


class Transport(SqsTransport):
    Channel = Channel
