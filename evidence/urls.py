from django.urls import path

from evidence import views

app_name = "evidence"

urlpatterns = [
    path("evidence/", views.EventListView.as_view(), name="event_list"),
    path("evidence/<int:sequence>/", views.event_detail, name="event_detail"),
    path("evidence/integrity/", views.integrity, name="integrity"),
    path("evidence/integrity/verify/", views.verification_create, name="verification_create"),
    path("evidence/integrity/verify_pack.py", views.pack_verifier, name="pack_verifier"),
    path("evidence/packs/", views.pack_list, name="pack_list"),
    path("evidence/packs/campaign/<int:campaign_id>/", views.pack_for_campaign, name="pack_for_campaign"),
    path("evidence/packs/<int:pk>/", views.pack_detail, name="pack_detail"),
    path("evidence/packs/<int:pk>/download/", views.pack_download, name="pack_download"),
    path("evidence/packs/<int:pk>/cancel/", views.pack_cancel, name="pack_cancel"),
]
