"""Escalation services: every write of the escalation rules, one transaction each.

A one-way stack of small modules (each imports only those above it in this list):

- `timers`: deadlines on rows, armed as named Celery tasks after commit, and the sweep;
- `consulting`: closing consults and telling their participants (below `route`, whose end of
  a holder's turn closes the chat's open consult);
- `route`: the chat's row locks, the holder check, visitor notices, closing a chat;
- `tagging`: tags on chats (and the stage's rule that a chat needs one to end);
- `offering`: making and withdrawing offers (broadcast, round-robin hunt);
- `queueing`: putting chats in queues and taking them out, estimates, queue publishes;
- `assignment`: giving a waiting chat to an agent (`take_chat`, `assign`);
- `dispatch`: automatic assignment and offers for waiting chats;
- `offers`: answering offers (accept, decline, lapse);
- `fallbacks`: wait-timeouts and the fallbacks they run, and the move every transfer shares;
- `handover`: hand-overs the agent stays in the chat for (warm, or to a colleague): offers,
  accept, join, take over, decline, cancel, their timeout;
- `transfer`: agents' escalations, and their hands to a colleague;
- `lifecycle`: starting and ending chats, the visitor leaving, giving a chat back;
- `presence`: agents' presence and gone consoles;
- `consults`: consulting a colleague or a group on a chat (an internal thread);
- `survey`: the satisfaction survey after the agent;
- `mail`: e-mail about chats (transcripts, left messages), sent by a task with retries;
- `waiting`, `posting`, `retention`, `replies`: still-searching notices, messages, erasure,
  canned replies' use.

Faces (consumers, views, the API, tasks) import from here: `from escalation import services`.
Nothing inside the package imports this facade.
"""

from escalation.services.assignment import take_chat
from escalation.services.consults import close_consult, open_consult, post_consult_message
from escalation.services.dispatch import dispatch
from escalation.services.fallbacks import (
    handle_wait_timeout,
    leave_offline_message,
    sweep_overdue_entries,
)
from escalation.services.handover import (
    accept_handover,
    cancel_handover,
    decline_handover,
    handle_handover_timeout,
    leave_joined_handovers,
    sweep_overdue_handovers,
    take_over,
)
from escalation.services.lifecycle import (
    abandon_if_visitor_gone,
    end_chat_by_agent,
    end_chat_by_visitor,
    end_if_visitor_gone,
    return_to_queue,
    start_chat,
    sweep_gone_visitors,
)
from escalation.services.mail import email_transcript, send_email_now, sweep_due_emails
from escalation.services.offers import (
    accept_offer,
    decline_offer,
    handle_offer_timeout,
    sweep_overdue_offers,
)
from escalation.services.posting import (
    Post,
    mark_read,
    post_agent_message,
    post_attachment,
    post_message,
    post_messages,
    post_visitor_message,
)
from escalation.services.presence import (
    hand_back_chats_of_gone_agent,
    mark_console_seen,
    mark_consoles_seen,
    set_presence,
    sign_out_if_console_gone,
    sweep_gone_agents,
)
from escalation.services.queueing import publish_queue_now, visitor_hello
from escalation.services.replies import count_canned_reply_use
from escalation.services.retention import erase_visitor, purge_expired_transcripts
from escalation.services.survey import answer_survey
from escalation.services.tagging import set_chat_tags
from escalation.services.transfer import escalate_chat, hand_to_colleague
from escalation.services.waiting import send_still_searching, sweep_due_notices

__all__ = [
    "Post",
    "abandon_if_visitor_gone",
    "accept_handover",
    "accept_offer",
    "answer_survey",
    "cancel_handover",
    "close_consult",
    "count_canned_reply_use",
    "decline_handover",
    "decline_offer",
    "dispatch",
    "email_transcript",
    "end_chat_by_agent",
    "end_chat_by_visitor",
    "end_if_visitor_gone",
    "erase_visitor",
    "escalate_chat",
    "hand_back_chats_of_gone_agent",
    "hand_to_colleague",
    "handle_handover_timeout",
    "handle_offer_timeout",
    "handle_wait_timeout",
    "leave_joined_handovers",
    "leave_offline_message",
    "mark_console_seen",
    "mark_consoles_seen",
    "mark_read",
    "open_consult",
    "post_agent_message",
    "post_attachment",
    "post_consult_message",
    "post_message",
    "post_messages",
    "post_visitor_message",
    "publish_queue_now",
    "purge_expired_transcripts",
    "return_to_queue",
    "send_email_now",
    "send_still_searching",
    "set_chat_tags",
    "set_presence",
    "sign_out_if_console_gone",
    "start_chat",
    "sweep_due_emails",
    "sweep_due_notices",
    "sweep_gone_agents",
    "sweep_gone_visitors",
    "sweep_overdue_entries",
    "sweep_overdue_handovers",
    "sweep_overdue_offers",
    "take_chat",
    "take_over",
    "visitor_hello",
]
