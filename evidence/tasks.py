"""Thin Celery entry points: take ids, call one service, safe to run twice."""

from celery import shared_task

from evidence import services


@shared_task(name="evidence.verify_chain")
def verify_chain(verification_id: int) -> bool:
    return services.verification_run(verification_id=verification_id)


@shared_task(name="evidence.verify_chain_scheduled")
def verify_chain_scheduled() -> int:
    """Daily check (django-celery-beat): queue a verification by the system actor."""
    return services.verification_request(actor=services.Actor.system("beat")).pk


@shared_task(name="evidence.checkpoint")
def checkpoint(reason: str = "schedule") -> int | None:
    """Sign the chain head (beat, every 6 hours; and at every campaign sign-off)."""
    from evidence.checkpoints import checkpoint_create
    from evidence.services import Actor

    made = checkpoint_create(reason=reason, actor=Actor.system("evidence.checkpoint"))
    return made.pk if made else None


@shared_task(name="evidence.build_pack")
def build_pack(pack_id: int) -> str:
    from evidence.pack_services import pack_build

    return pack_build(pack_id=pack_id).status
