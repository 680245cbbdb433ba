from django.urls import path

from chat import views

app_name = "console"

urlpatterns = [
    path("", views.console_home, name="home"),
    path("messages/", views.offline_messages, name="offline_messages"),
    path("history/", views.history, name="history"),
]
