from django.urls import path

from evidence import views

app_name = "evidence"

urlpatterns = [
    path("evidence/", views.EventListView.as_view(), name="event_list"),
    path("evidence/<int:sequence>/", views.event_detail, name="event_detail"),
    path("evidence/integrity/", views.integrity, name="integrity"),
    path("evidence/integrity/verify/", views.verification_create, name="verification_create"),
]
