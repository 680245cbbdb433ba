from django.urls import path

from reporting import views

app_name = "reporting"

urlpatterns = [
    path("", views.reports_home, name="home"),
    path("live/", views.live_view, name="live"),
    path("escalated/", views.escalated_chats, name="escalated"),
    path("over-time/", views.over_time, name="over_time"),
    path("by-agent/", views.by_agent, name="by_agent"),
    path("reasons/", views.reasons_and_targets, name="reasons"),
    path("waits/", views.waits, name="waits"),
    path("fallbacks/", views.fallbacks, name="fallbacks"),
    path("satisfaction/", views.satisfaction, name="satisfaction"),
    path("tags/", views.by_tag, name="tags"),
    path("friction/", views.friction_report, name="friction"),
    path("search/", views.search_chats, name="search"),
    path("predicted-vs-actual/", views.predicted_vs_actual, name="predicted_vs_actual"),
    path("chats/<id:chat_id>/", views.chat_detail, name="chat"),
    path(
        "chats/<id:chat_id>/transcript.csv",
        views.chat_transcript_download,
        {"fmt": "csv"},
        name="chat_transcript_csv",
    ),
    path(
        "chats/<id:chat_id>/transcript.json",
        views.chat_transcript_download,
        {"fmt": "json"},
        name="chat_transcript_json",
    ),
]
