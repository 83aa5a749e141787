from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from broker.queues import queues_ensure, topic_ensure

SHOWN_ATTRIBUTES = ("VisibilityTimeout", "RedrivePolicy", "MessageRetentionPeriod")


class Command(BaseCommand):
    help = (
        "Create the order queue and its dead-letter queue on the configured SQS endpoint, "
        "or bring their attributes up to date, and the order-events SNS topic. Idempotent."
    )

    def handle(self, *args, **options):
        queues = queues_ensure()
        for queue in queues:
            self.stdout.write(f"{queue.name}: {queue.url}")
            for name in SHOWN_ATTRIBUTES:
                if name in queue.attributes:
                    self.stdout.write(f"  {name} = {queue.attributes[name]}")
        topic_arn = topic_ensure()
        self.stdout.write(f"{settings.SNS_TOPIC_NAME}: {topic_arn}")
        if topic_arn != settings.SNS_TOPIC_ARN or not all(queue.url_matches_settings for queue in queues):
            raise CommandError(
                "The server's queue URLs or topic ARN differ from the ones in settings: check AWS_ACCOUNT_ID, "
                "AWS_DEFAULT_REGION and AWS_ENDPOINT_URL_SQS."
            )
