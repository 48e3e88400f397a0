"""Shared view machinery: the restricted, filtered, keyset-paginated list page that every app's lists use."""

from django.conf import settings
from django.db.models import Count
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.views import View

from soxgov import access
from soxgov.pagination import InvalidCursor, keyset_paginate


class ObjectListView(View):
    """A list page. With htmx (the filter form, the pager) only the results fragment is rendered.

    Subclasses set ``model``, ``filterset_class``, ``ordering`` (ending with a unique column) and
    ``template_name``; the fragment template is ``<template_name minus .html>_results.html``.
    """

    model = None
    filterset_class = None
    ordering: tuple[str, ...] = ("pk",)
    template_name = ""
    select_related: tuple[str, ...] = ()
    prefetch_related: tuple[str, ...] = ()
    title = ""

    def get_queryset(self, request):
        access.require(request.user, self.model, access.VIEW)
        queryset = self.model.objects.restrict(request.user, access.VIEW)
        return queryset.select_related(*self.select_related).prefetch_related(*self.prefetch_related)

    def extra_context(self, request, filterset) -> dict:
        """Anything else the page and its fragment show (counts, totals)."""
        return {}

    def decorate(self, request, items: list) -> None:
        """Add what the rows show beyond their columns, for the whole page at once (never a query per row)."""

    def get(self, request):
        filterset = self.filterset_class(request.GET, queryset=self.get_queryset(request), request=request)
        if not filterset.is_valid():
            return render(request, "inc/bad_filter.html", {"errors": filterset.errors}, status=400)
        try:
            page = keyset_paginate(
                filterset.qs,
                ordering=self.ordering,
                cursor=request.GET.get("cursor") or None,
                page_size=settings.SOXGOV_PAGE_SIZE,
            )
        except InvalidCursor as exc:
            return HttpResponseBadRequest(str(exc))
        self.decorate(request, page.items)
        query = request.GET.copy()
        query.pop("cursor", None)
        context = {"filterset": filterset, "page": page, "query": query.urlencode(), "title": self.title}
        context.update(self.extra_context(request, filterset))
        template = self.template_name
        if request.htmx and not request.htmx.boosted:
            template = template.replace(".html", "_results.html")
        return render(request, template, context)


def restricted_object(request, model, pk, *, select_related=()):
    """The object if the user may view it; 404 otherwise, so the existence of others' data does not leak."""
    access.require(request.user, model, access.VIEW)
    queryset = model.objects.restrict(request.user, access.VIEW)
    if select_related:
        queryset = queryset.select_related(*select_related)
    return get_object_or_404(queryset, pk=pk)


def home(request):
    from entitlements.models import Account, Application, Entitlement, Grant, Identity
    from evidence.models import EvidenceEvent

    counts = {
        label: model.objects.restrict(request.user, access.VIEW).count()
        for label, model in (
            ("Identities", Identity),
            ("Applications", Application),
            ("Accounts", Account),
            ("Entitlements", Entitlement),
            ("Grants", Grant),
            ("Evidence events", EvidenceEvent),
        )
        if access.can_attempt(request.user, model, access.VIEW)
    }
    orphans = (
        Account.objects.restrict(request.user).filter(identity__isnull=True).count()
        if access.can_attempt(request.user, Account, access.VIEW)
        else None
    )
    by_kind = (
        Identity.objects.restrict(request.user).values("kind").annotate(n=Count("id")).order_by("kind")
        if access.can_attempt(request.user, Identity, access.VIEW)
        else []
    )
    from sod.models import Violation

    live_violations = (
        Violation.objects.restrict(request.user).filter(status__in=Violation.ACTIVE).count()
        if access.can_attempt(request.user, Violation, access.VIEW)
        else None
    )
    context = {"counts": counts, "orphans": orphans, "by_kind": by_kind, "live_violations": live_violations}
    return render(request, "home.html", context)
