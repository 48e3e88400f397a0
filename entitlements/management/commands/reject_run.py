from entitlements.management.commands.approve_run import Command as ApproveCommand


class Command(ApproveCommand):
    help = "Reject a held run (an admin other than the one who started it); nothing is applied."
    decision = "reject"
