"""Escalation services: routing (start, queue, take, assign, presence, end, drop), offers
(broadcast, round-robin hunt), waiting (still-searching notices) and transfer (escalate,
wait-timeouts, fallbacks). Import from here: `from escalation import services`."""

from escalation.services.offers import (
    accept_offer,
    decline_offer,
    handle_offer_timeout,
    sweep_overdue_offers,
)
from escalation.services.routing import (
    abandon_if_visitor_gone,
    assign,
    dispatch,
    end_chat_by_agent,
    end_chat_by_visitor,
    enqueue,
    leave_queue,
    lock_route,
    mark_read,
    post_agent_message,
    publish_queue_now,
    queue_changed,
    return_to_queue,
    set_presence,
    start_chat,
    take_chat,
    visitor_hello,
)
from escalation.services.transfer import (
    escalate_chat,
    handle_wait_timeout,
    leave_offline_message,
    run_fallback,
    sweep_overdue_entries,
)
from escalation.services.waiting import send_still_searching, sweep_due_notices

__all__ = [
    "abandon_if_visitor_gone",
    "accept_offer",
    "assign",
    "decline_offer",
    "dispatch",
    "end_chat_by_agent",
    "end_chat_by_visitor",
    "enqueue",
    "escalate_chat",
    "handle_offer_timeout",
    "handle_wait_timeout",
    "leave_offline_message",
    "leave_queue",
    "lock_route",
    "mark_read",
    "post_agent_message",
    "publish_queue_now",
    "queue_changed",
    "return_to_queue",
    "run_fallback",
    "send_still_searching",
    "set_presence",
    "start_chat",
    "sweep_due_notices",
    "sweep_overdue_entries",
    "sweep_overdue_offers",
    "take_chat",
    "visitor_hello",
]
