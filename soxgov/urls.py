from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from mozilla_django_oidc.views import OIDCLogoutView
from rest_framework.routers import DefaultRouter

from entitlements import api as entitlements_api
from evidence import api as evidence_api
from reviews import api as reviews_api
from sod import api as sod_api
from soxgov import health, saml, sso, views
from soxgov.api.tokens import TokenObtainView
from soxgov.breakglass import SignInForm

router = DefaultRouter()
router.register("identities", entitlements_api.IdentityViewSet)
router.register("applications", entitlements_api.ApplicationViewSet)
router.register("accounts", entitlements_api.AccountViewSet)
router.register("entitlements", entitlements_api.EntitlementViewSet)
router.register("grants", entitlements_api.GrantViewSet)
router.register("connectors", entitlements_api.ConnectorViewSet)
router.register("runs", entitlements_api.ConnectorRunViewSet)
router.register("connector-threshold-changes", entitlements_api.ConnectorThresholdChangeViewSet)
router.register("evidence/events", evidence_api.EvidenceEventViewSet)
router.register("evidence/verifications", evidence_api.ChainVerificationViewSet)
router.register("evidence/packs", evidence_api.EvidencePackViewSet)
router.register("evidence/signing-keys", evidence_api.SigningKeyViewSet)
router.register("sod/rules", sod_api.RuleViewSet)
router.register("sod/violations", sod_api.ViolationViewSet)
router.register("sod/acceptances", sod_api.RiskAcceptanceViewSet)
router.register("sod/checks", sod_api.CheckViewSet)
router.register("exceptions", sod_api.ControlExceptionViewSet)
router.register("reviews/campaigns", reviews_api.CampaignViewSet)
router.register("reviews/items", reviews_api.ReviewItemViewSet)
router.register("reviews/decisions", reviews_api.DecisionViewSet)
router.register("reviews/remediation", reviews_api.RemediationTaskViewSet)
router.register("reviews/samples", reviews_api.AuditSampleViewSet)

urlpatterns = [
    path("", views.home, name="home"),
    path("health/live", health.live, name="health_live"),
    path("health/ready", health.ready, name="health_ready"),
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True, authentication_form=SignInForm),
        name="login",
    ),
    # RP-initiated logout at the identity provider too, for a session that single sign-on started.
    path("logout/", login_not_required(OIDCLogoutView.as_view()), name="logout"),
    path(
        "oidc/authenticate/", login_not_required(sso.SsoStartView.as_view()), name="oidc_authentication_init"
    ),
    path(
        "oidc/callback/",
        login_not_required(sso.SsoCallbackView.as_view()),
        name="oidc_authentication_callback",
    ),
    path("saml/login/", login_not_required(saml.saml_login), name="saml_login"),
    path("saml/acs/", login_not_required(saml.saml_acs), name="saml_acs"),
    path("saml/metadata/", login_not_required(saml.saml_metadata), name="saml_metadata"),
    path("", include("entitlements.urls")),
    path("", include("evidence.urls")),
    path("", include("sod.urls")),
    path("", include("reviews.urls")),
    path("admin/", admin.site.urls),
    path("api/", include(router.urls)),
    path("api/sod/what-if/", sod_api.WhatIfView.as_view(), name="sod_what_if"),
    path("api/auth/token/", TokenObtainView.as_view(), name="api_token"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    # The split view serves Swagger UI's start-up script as a file, which script-src 'self' allows.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api_schema", template_name="api_docs.html"),
        name="api_docs",
    ),
]
