import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from stack.chaos import ChaosRun, ChaosSettings
from stack.postgres import database_url
from stack.processes import stop_on_sigterm


class Command(BaseCommand):
    help = (
        "Post orders through a local stack of its own (SQS/SNS server, web, relays, workers) on PostgreSQL while "
        "workers and relays are SIGKILLed, SQS goes away and database connections are killed; then reconcile "
        "orders, stock and events. "
        "Exits 1 on any mismatch."
    )
    # It starts and configures its own stack; the settings of this process only give the database.
    requires_system_checks = []

    def add_arguments(self, parser):
        defaults = ChaosSettings()
        parser.add_argument("--orders", type=int, default=defaults.orders)
        parser.add_argument("--workers", type=int, default=defaults.workers)
        parser.add_argument("--worker-kills", type=int, default=defaults.worker_kills)
        parser.add_argument("--relays", type=int, default=defaults.relays)
        parser.add_argument("--relay-kills", type=int, default=defaults.relay_kills)
        parser.add_argument("--outage-seconds", type=float, default=defaults.outage_seconds)
        parser.add_argument("--duplicated-messages", type=int, default=defaults.duplicated_messages)
        parser.add_argument("--drain-timeout", type=float, default=defaults.drain_timeout)
        parser.add_argument("--seed", type=int, help="Repeat a run's random choices.")

    def handle(self, *args, seed, **options):
        stop_on_sigterm()
        if connection.vendor != "postgresql":
            raise CommandError("The chaos run needs PostgreSQL: set DATABASE_URL=postgres://...")
        chaos_settings = ChaosSettings(
            orders=options["orders"],
            workers=options["workers"],
            worker_kills=options["worker_kills"],
            relays=options["relays"],
            relay_kills=options["relay_kills"],
            outage_seconds=options["outage_seconds"],
            duplicated_messages=options["duplicated_messages"],
            drain_timeout=options["drain_timeout"],
        )
        if seed is not None:
            chaos_settings.seed = seed
        run = ChaosRun(
            chaos_settings,
            log_dir=settings.BASE_DIR / "var" / "chaos",
            database_url=database_url(connection.settings_dict),
            write=lambda text: self.stdout.write(text),
        )
        reconciliation = run.run()
        self.stdout.write(reconciliation.summary())
        if reconciliation.mismatches:
            sys.exit(1)
