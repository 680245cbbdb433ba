"""The websocket consumers: authenticate, authorise, validate, call a service, forward events.

`protocol` holds what both share; `visitor` and `console` are the two sockets (chat.routing).
"""
