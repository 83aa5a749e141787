from django.core.management.base import BaseCommand, CommandError

from broker.dead_letters import dead_letters_list, dead_letters_purge, dead_letters_redrive


class Command(BaseCommand):
    help = "Look at the dead-letter queue, move messages back to the order queue, or empty it."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser("list", help="Show every dead letter without consuming it.")
        redrive = actions.add_parser("redrive", help="Move dead letters back to the order queue (all by default).")
        redrive.add_argument("--message-id", action="append", default=[], help="Only this SQS message id (repeatable).")
        redrive.add_argument("--order-id", action="append", default=[], help="Only this order's messages (repeatable).")
        purge = actions.add_parser("purge", help="Delete every dead letter for good.")
        purge.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")

    def handle(self, *args, action, **options):
        getattr(self, f"handle_{action}")(**options)

    def handle_list(self, **options):
        letters = dead_letters_list()
        for letter in letters:
            self.stdout.write(
                f"{letter.message_id}  task={letter.task.task} id={letter.task.task_id or '-'} "
                f"order_id={letter.task.order_id or '-'} receives={letter.receive_count} "
                f"first_seen={letter.first_seen:%Y-%m-%d %H:%M:%S}Z"
            )
            if letter.last_error:
                self.stdout.write(f"    last error: {letter.last_error}")
        self.stdout.write(f"{len(letters)} dead letter(s)")

    def handle_redrive(self, *, message_id, order_id, **options):
        message_ids, order_ids = set(message_id), set(order_id)
        if message_ids or order_ids:
            moved = dead_letters_redrive(
                selected=lambda letter: letter.message_id in message_ids or letter.task.order_id in order_ids
            )
        else:
            moved = dead_letters_redrive()
        self.stdout.write(f"{moved} message(s) moved back to the order queue")

    def handle_purge(self, *, yes, **options):
        if not yes:
            try:
                answer = input("Delete every message in the dead-letter queue for good? Type 'yes': ")
            except EOFError:  # no terminal: not a yes
                answer = ""
            if answer.strip().lower() != "yes":
                raise CommandError("Nothing purged.")
        count = dead_letters_purge()
        self.stdout.write(f"Purged about {count} message(s)")
