from django.urls import path

from chat import views, widget

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
    # The same pages in a company's widget (see chat.widget): the visitor known by the form's
    # token, not a cookie; framable only by the site's origins.
    path("w/<str:key>/", widget.framed(views.widget_open_page), name="widget_open"),
    path("w/<str:key>/start/", widget.framed(views.visitor_start), name="widget_start"),
    path("w/<str:key>/new/", widget.framed(views.visitor_new), name="widget_new"),
    path(
        "w/<str:key>/leave-message/",
        widget.framed(views.visitor_leave_message),
        name="widget_leave_message",
    ),
    path(
        "w/<str:key>/transcript/",
        widget.framed(views.visitor_email_transcript),
        name="widget_email_transcript",
    ),
    path("w/<str:key>/survey/", widget.framed(views.visitor_survey), name="widget_survey"),
    path("w/<str:key>/config", widget.widget_config, name="widget_config"),
    path("w/<str:key>/attributes", widget.widget_attributes, name="widget_attributes"),
]
