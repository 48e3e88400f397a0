"""The four roles (admin, reviewer, control owner, auditor) as Django groups, with their model permissions defined
here in code.

Row-level scoping (what a reviewer may see inside a model) lives in soxgov/access.py; this module only says
which actions on which models each role may attempt at all.
"""

from django.db import models

DOMAIN_APPS = ("entitlements", "sod", "reviews")


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    REVIEWER = "reviewer", "Reviewer"
    CONTROL_OWNER = "control_owner", "Control owner"
    AUDITOR = "auditor", "Auditor"


# Records nobody changes or deletes once written, whatever the role.
APPEND_ONLY = ("change_auditsample", "delete_auditsample")
# The auditors' working papers: not for reviewers, whose own decisions they test.
AUDITORS_WORK = ("view_auditsample",)


def _role_permissions(role: Role, Permission):
    view_domain = Permission.objects.filter(
        content_type__app_label__in=(*DOMAIN_APPS, "evidence"), codename__startswith="view_"
    )
    if role == Role.ADMIN:
        return (
            Permission.objects.filter(
                content_type__app_label__in=(*DOMAIN_APPS, "django_celery_beat")
            ).exclude(codename__in=APPEND_ONLY)
            | view_domain
            | Permission.objects.filter(content_type__app_label="soxgov", content_type__model="user")
            | Permission.objects.filter(content_type__app_label="evidence", codename="add_chainverification")
            # Cancelling a stuck pack (evidence/pack_services.py pack_cancel).
            | Permission.objects.filter(content_type__app_label="evidence", codename="change_evidencepack")
            # API tokens and failed-sign-in counters: listed, and revoked or cleared (unlocking), never created.
            | Permission.objects.filter(
                content_type__app_label="soxgov", codename__in=("view_apitoken", "delete_apitoken")
            )
            | Permission.objects.filter(
                content_type__app_label="axes", codename__in=("view_accessattempt", "delete_accessattempt")
            )
        )
    if role == Role.AUDITOR:
        # Auditors draw their samples (reviews/samples.py): a record of what they test, nothing else changes.
        return view_domain | Permission.objects.filter(
            content_type__app_label="reviews", codename="add_auditsample"
        )
    if role == Role.CONTROL_OWNER:
        # Control owners answer SoD violations: compensating controls and four-eyes risk acceptance.
        return (
            view_domain
            | Permission.objects.filter(
                content_type__app_label="sod",
                codename__in=(
                    "change_violation",
                    "add_mitigation",
                    "add_riskacceptance",
                    "change_riskacceptance",
                    # ... and work the exception queue.
                    "change_controlexception",
                ),
            )
            | Permission.objects.filter(
                # ... and close remediation with proof.
                content_type__app_label="reviews",
                codename="change_remediationtask",
            )
        )
    if role == Role.REVIEWER:
        return (
            Permission.objects.filter(content_type__app_label="entitlements", codename__startswith="view_")
            | Permission.objects.filter(content_type__app_label="sod", codename="view_violation")
            # Reviewers see and decide their own review work (rows scoped in soxgov/access.py).
            | Permission.objects.filter(
                content_type__app_label="reviews", codename__startswith="view_"
            ).exclude(codename__in=AUDITORS_WORK)
            | Permission.objects.filter(
                content_type__app_label="reviews", codename__in=("change_reviewitem", "add_signoff")
            )
        )
    raise ValueError(role)


def sync_role_groups(sender=None, using="default", **kwargs):
    """Create the role groups and set exactly the permissions this module defines (idempotent).

    Runs after every app's post_migrate, because each app's permissions only exist once its own signal ran.
    """
    from django.contrib.auth.models import Group, Permission

    for role in Role:
        group, _ = Group.objects.using(using).get_or_create(name=role.value)
        group.permissions.set(_role_permissions(role, Permission).using(using).distinct())


def user_roles(user) -> frozenset[Role]:
    """The roles a user holds, cached on the user object for the request."""
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    cached = getattr(user, "_soxgov_roles", None)
    if cached is None:
        names = set(user.groups.values_list("name", flat=True))
        cached = frozenset(role for role in Role if role.value in names)
        if user.is_superuser:
            cached = cached | {Role.ADMIN}
        user._soxgov_roles = cached
    return cached
