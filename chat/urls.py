from django.urls import path

from chat import views

app_name = "chat"

urlpatterns = [
    path("", views.visitor_start, name="start"),
    path("room/", views.visitor_room, name="room"),
    path("new/", views.visitor_new, name="new"),
    path("room/leave-message/", views.visitor_leave_message, name="leave_message"),
    path("room/transcript/", views.visitor_email_transcript, name="email_transcript"),
    path("room/survey/", views.visitor_survey, name="survey"),
    path("room/attachments/", views.visitor_attach, name="attach"),
    path("files/<str:value>/", views.visitor_attachment, name="attachment"),
]
