from django.urls import path

from entitlements import connector_views, views

app_name = "entitlements"

urlpatterns = [
    path("identities/", views.IdentityListView.as_view(), name="identity_list"),
    path("identities/<int:pk>/", views.identity_detail, name="identity_detail"),
    path("identities/<int:pk>/access-on/", views.identity_access_on, name="identity_access_on"),
    path("applications/", views.ApplicationListView.as_view(), name="application_list"),
    path("applications/<int:pk>/", views.application_detail, name="application_detail"),
    path("accounts/", views.AccountListView.as_view(), name="account_list"),
    path("accounts/<int:pk>/", views.account_detail, name="account_detail"),
    path("entitlements/", views.EntitlementListView.as_view(), name="entitlement_list"),
    path("entitlements/<int:pk>/", views.entitlement_detail, name="entitlement_detail"),
    path("entitlements/<int:pk>/holders-on/", views.entitlement_holders_on, name="entitlement_holders_on"),
    path("connectors/", connector_views.connector_list, name="connector_list"),
    path("connectors/new/", connector_views.connector_edit, name="connector_add"),
    path("connectors/<int:pk>/", connector_views.connector_edit, name="connector_edit"),
    path("connectors/<int:pk>/test/", connector_views.connector_test_view, name="connector_test"),
    path("connectors/<int:pk>/pull/", connector_views.connector_pull_view, name="connector_pull"),
    path("imports/", views.RunListView.as_view(), name="run_list"),
    path("imports/upload/", views.run_upload, name="run_upload"),
    path("imports/<int:pk>/", views.run_detail, name="run_detail"),
    path("imports/<int:pk>/approve/", views.run_decide, {"decision": "approve"}, name="run_approve"),
    path("imports/<int:pk>/reject/", views.run_decide, {"decision": "reject"}, name="run_reject"),
    path("imports/<int:pk>/cancel/", views.run_cancel, name="run_cancel"),
    path(
        "imports/thresholds/<int:pk>/approve/",
        views.threshold_decide,
        {"decision": "approve"},
        name="threshold_approve",
    ),
    path(
        "imports/thresholds/<int:pk>/reject/",
        views.threshold_decide,
        {"decision": "reject"},
        name="threshold_reject",
    ),
]
