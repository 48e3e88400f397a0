"""Thin Celery entry points and durable jobs (soxgov/jobs.py) for campaigns."""

from celery import shared_task

from reviews import notify, reminders
from reviews.services import micro_review_grants
from soxgov import jobs


@jobs.job("reviews.notify_launched", label="Tell the reviewers of a launched campaign", attempts=3)
def notify_launched(campaign_id: int) -> int:
    return notify.launched(campaign_id)


@shared_task(name="reviews.daily")
def daily() -> dict:
    sent, escalated = reminders.remind_and_escalate()
    return {"reminders": sent, "escalations": escalated, "launched": reminders.launch_recurrences()}


@jobs.job("reviews.micro_review_run", label="Micro-review of the privileged grants it added")
def micro_review_run(run_id: int) -> int:
    """Grants a connector run added go straight to the standing micro-reviews (privileged or sensitive only)."""
    from entitlements.models import Grant

    added = list(
        Grant.history.filter(history_change_reason=f"connector run {run_id}", history_type="+").values_list(
            "id", flat=True
        )
    )
    return micro_review_grants(grant_ids=added, run_id=run_id) if added else 0


@jobs.job("reviews.verify_remediation", label="Close remediation its data proves done")
def verify_remediation(run_id: int, application_ids: list[int]) -> int:
    """After a pull: close the remediation tasks whose grant it no longer contains."""
    from reviews.remediation import verify_after_run

    return verify_after_run(run_id=run_id, application_ids=application_ids)


@jobs.job("reviews.recommendations_refresh", label="Recommend again for the people whose access changed")
def recommendations_refresh(identity_ids: list[int]) -> int:
    from reviews import recommendations

    return recommendations.refresh(identity_ids)
