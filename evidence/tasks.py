"""Thin Celery entry points and durable jobs (soxgov/jobs.py): take ids, call one service, safe to run twice."""

from celery import shared_task

from evidence import pack_services, services
from soxgov import jobs


@jobs.job(
    "evidence.verify_chain",
    label="Verify the evidence chain",
    attempts=3,
    give_up=services.verification_give_up,
)
def verification_job(verification_id: int) -> bool:
    return services.verification_run(verification_id=verification_id)


@shared_task(name="evidence.verify_chain_scheduled")
def verify_chain_scheduled() -> int:
    """Daily check (django-celery-beat): queue a verification by the system actor."""
    return services.verification_request(actor=services.Actor.system("beat")).pk


@jobs.job("evidence.checkpoint", label="Sign a checkpoint of the chain head", attempts=5)
def checkpoint_job(reason: str = "schedule") -> int | None:
    """Sign the chain head (beat, every 6 hours; and at every campaign sign-off)."""
    from evidence.checkpoints import checkpoint_create

    made = checkpoint_create(reason=reason, actor=services.Actor.system("evidence.checkpoint"))
    return made.pk if made else None


@shared_task(name="evidence.checkpoint")
def checkpoint(reason: str = "schedule") -> int | None:
    return checkpoint_job(reason)


@jobs.job(
    "evidence.build_pack", label="Build the evidence pack", attempts=3, give_up=pack_services.pack_give_up
)
def pack_job(pack_id: int) -> str:
    return pack_services.pack_build(pack_id=pack_id).status
