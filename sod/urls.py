from django.urls import path, re_path

from sod import views

app_name = "sod"

urlpatterns = [
    path("sod/rules/", views.RuleListView.as_view(), name="rule_list"),
    path("sod/rules/new/", views.rule_edit, name="rule_create"),
    path("sod/rules/import/", views.ruleset_upload, name="ruleset_upload"),
    path("sod/rules/<int:pk>/", views.rule_detail, name="rule_detail"),
    path("sod/rules/<int:pk>/edit/", views.rule_edit, name="rule_edit"),
    path("sod/violations/", views.ViolationListView.as_view(), name="violation_list"),
    path("sod/violations/<int:pk>/", views.violation_detail, name="violation_detail"),
    path("sod/violations/<int:pk>/mitigate/", views.violation_mitigate, name="violation_mitigate"),
    path("sod/violations/<int:pk>/accept/", views.violation_accept, name="violation_accept"),
    path(
        "sod/acceptances/<int:pk>/approve/",
        views.acceptance_decide,
        {"decision": "approve"},
        name="acceptance_approve",
    ),
    path(
        "sod/acceptances/<int:pk>/reject/",
        views.acceptance_decide,
        {"decision": "reject"},
        name="acceptance_reject",
    ),
    path("sod/what-if/", views.what_if_page, name="what_if"),
    path("exceptions/", views.ExceptionListView.as_view(), name="exception_list"),
    path("exceptions/<int:pk>/", views.exception_detail, name="exception_detail"),
    re_path(
        r"^exceptions/(?P<pk>[0-9]+)/(?P<action>assign|comment|mitigate|accept|approve|reject|close)/$",
        views.exception_act,
        name="exception_act",
    ),
    path("dashboard/", views.dashboard_page, name="dashboard"),
]
