from django.apps import AppConfig


class BrokerConfig(AppConfig):
    name = "broker"
    verbose_name = "SQS broker"

    def ready(self):
        from broker import checks  # noqa: F401 - registers the system checks
