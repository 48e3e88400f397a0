from django.apps import AppConfig


class SoxgovConfig(AppConfig):
    name = "soxgov"
    verbose_name = "SOXGov"

    def ready(self):
        from django.contrib.auth.signals import user_logged_in
        from django.db.models.signals import post_migrate

        from soxgov.middleware import session_started
        from soxgov.roles import sync_role_groups

        # Roles are defined in code (soxgov/roles.py); every migrate brings the groups' permissions in line.
        post_migrate.connect(sync_role_groups, dispatch_uid="soxgov.sync_role_groups")
        user_logged_in.connect(session_started, dispatch_uid="soxgov.session_started")
