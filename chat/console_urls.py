from django.urls import path

from chat import views

app_name = "console"

urlpatterns = [
    path("", views.console_home, name="home"),
    path("messages/", views.offline_messages, name="offline_messages"),
    path("history/", views.history, name="history"),
    path("replies/", views.canned_replies, name="replies"),
    path("replies.json", views.canned_replies_json, name="replies_json"),
    path("replies/<id:reply_id>/edit/", views.canned_reply_edit, name="reply_edit"),
    path("replies/<id:reply_id>/delete/", views.canned_reply_delete, name="reply_delete"),
    path("replies/<id:reply_id>/used/", views.canned_reply_used, name="reply_used"),
]
