from django.urls import path

from reviews import sample_views, views

app_name = "reviews"

urlpatterns = [
    path("reviews/", views.MyReviewsView.as_view(), name="my_reviews"),
    path("reviews/decide/", views.decide, name="decide"),
    path("reviews/delegate/", views.delegate, name="delegate"),
    path("reviews/items/<int:pk>/", views.item_detail, name="item_detail"),
    path("reviews/items/<int:pk>/change/", views.decision_change, name="decision_change"),
    path("reviews/campaigns/", views.CampaignListView.as_view(), name="campaign_list"),
    path("reviews/campaigns/new/", views.campaign_edit, name="campaign_create"),
    path("reviews/campaigns/<int:pk>/", views.campaign_detail, name="campaign_detail"),
    path("reviews/campaigns/<int:pk>/edit/", views.campaign_edit, name="campaign_edit"),
    path("reviews/campaigns/<int:pk>/preview/", views.campaign_preview, name="campaign_preview"),
    path("reviews/campaigns/<int:pk>/launch/", views.campaign_launch, name="campaign_launch"),
    path("reviews/campaigns/<int:pk>/close/", views.campaign_close, name="campaign_close"),
    path("reviews/campaigns/<int:pk>/sign-off/", views.sign_off, name="sign_off"),
    path("reviews/campaigns/<int:pk>/stamps/", views.campaign_stamps, name="campaign_stamps"),
    path("reviews/how-reviews-are-judged/", views.intelligence, name="intelligence"),
    path("reviews/remediation/", views.RemediationListView.as_view(), name="remediation_list"),
    path("reviews/remediation/<int:pk>/", views.remediation_detail, name="remediation_detail"),
    path("reviews/remediation/<int:pk>/update/", views.remediation_update, name="remediation_update"),
    path("reviews/remediation/<int:pk>/close/", views.remediation_close, name="remediation_close"),
    path(
        "reviews/remediation/<int:pk>/attachment/",
        views.remediation_attachment,
        name="remediation_attachment",
    ),
    path("notifications/", views.notifications, name="notifications"),
    path("notifications/read/", views.notifications_read, name="notifications_read"),
    path("reviews/samples/", sample_views.SampleListView.as_view(), name="sample_list"),
    path("reviews/samples/<int:pk>/", sample_views.sample_detail, name="sample_detail"),
    path("reviews/samples/<int:pk>/export/", sample_views.sample_export_view, name="sample_export"),
]
