from django.apps import AppConfig


class SoxgovConfig(AppConfig):
    name = "soxgov"
    verbose_name = "SOXGov"

    def ready(self):
        from axes.signals import user_locked_out
        from django.contrib.auth.signals import user_logged_in, user_login_failed
        from django.db.models.signals import post_migrate

        from soxgov import signin
        from soxgov.middleware import session_started
        from soxgov.roles import sync_role_groups

        # Roles are defined in code (soxgov/roles.py); every migrate brings the groups' permissions in line.
        post_migrate.connect(sync_role_groups, dispatch_uid="soxgov.sync_role_groups")
        user_logged_in.connect(session_started, dispatch_uid="soxgov.session_started")
        user_logged_in.connect(signin.on_login_succeeded, dispatch_uid="soxgov.login_succeeded")
        user_login_failed.connect(signin.on_login_failed, dispatch_uid="soxgov.login_failed")
        user_locked_out.connect(signin.on_locked_out, dispatch_uid="soxgov.locked_out")
