import logging
import signal
import threading

from django.core.management.base import BaseCommand

from outbox.relay import relay_forever

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Publish outbox rows (order tasks to SQS, events to SNS) in batches, as a long-running process. "
        "Several may run at once on PostgreSQL. SIGTERM or Ctrl-C stops it after the current batch."
    )

    def handle(self, *args, **options):
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        logger.info("Outbox relay started")
        relay_forever(stop)
        logger.info("Outbox relay stopped")
