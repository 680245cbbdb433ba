"""Routing errors; each has the stable `code` the protocol and the API send."""

from chat.exceptions import ChatError


class UnknownTopic(ChatError):
    code = "unknown_topic"
    message = "Choose one of the listed topics."


class AlreadyTaken(ChatError):
    code = "already_taken"
    message = "This chat was already taken by another agent."


class NotYourChat(ChatError):
    code = "not_your_chat"
    message = "You are not holding this chat."


class AgentNotOnline(ChatError):
    code = "not_online"
    message = "Set yourself online to take chats."


class AtCapacity(ChatError):
    code = "at_capacity"
    message = "You are at your chat capacity; end a chat first."


class UnknownTarget(ChatError):
    code = "unknown_target"
    message = "That escalation target is not allowed here."


class NoteRequired(ChatError):
    code = "note_required"
    message = "A hand-over note is required."


class UnknownReason(ChatError):
    code = "unknown_reason"
    message = "Choose one of the listed reasons."


class NobodyAvailable(ChatError):
    code = "nobody_available"
    message = "Nobody there is online with free capacity."


class ConsoleLoginRevoked(ChatError):
    """The console's agent may no longer act: disabled, no longer an agent, or logged out."""

    code = "forbidden"
    message = "You are no longer signed in as an agent."


class UnknownCommand(ChatError):
    code = "unknown_command"
    message = "Unknown command. Type /help for the list."


class SurveyNotOffered(ChatError):
    code = "no_survey"
    message = "This chat has no survey to answer."


class SurveyAlreadyAnswered(ChatError):
    code = "survey_answered"
    message = "You have already rated this chat. Thank you!"


class OfflineMessageNotOffered(ChatError):
    code = "not_offered"
    message = "This chat does not take a message."


class OfferNotFound(ChatError):
    code = "offer_not_found"
    message = "There is no such offer for you."


class OfferClosed(ChatError):
    code = "offer_closed"
    message = "This offer is no longer open."


class OfferLapsed(ChatError):
    code = "offer_lapsed"
    message = "Too late: the offer lapsed and went to the next agent."


class TagRequired(ChatError):
    code = "tag_required"
    message = "Add a tag (what the chat was about) before you end it."


class UnknownTag(ChatError):
    code = "unknown_tag"
    message = "Choose tags from the list."


class ConsultNotFound(ChatError):
    """No such consult, or one this agent is not part of (the two answers are the same)."""

    code = "consult_not_found"
    message = "There is no such consult for you."


class ConsultClosed(ChatError):
    code = "consult_closed"
    message = "This consult is closed."


class ConsultAlreadyOpen(ChatError):
    code = "consult_open"
    message = "A consult is already open on this chat: close it before asking someone else."


class HandoverPending(ChatError):
    code = "handover_pending"
    message = "A hand-over of this chat is already under way: cancel it first."


class HandoverNotFound(ChatError):
    code = "handover_not_found"
    message = "There is no such hand-over for you."


class HandoverClosed(ChatError):
    code = "handover_closed"
    message = "This hand-over is no longer open."


class NotReceiver(ChatError):
    code = "not_receiver"
    message = "Only the agent who joined to take this chat over can do that."


class UnknownColleague(ChatError):
    code = "unknown_colleague"
    message = "There is no such colleague or group."


class ColleagueUnavailable(ChatError):
    """Yourself, a colleague who is not online, or a group with nobody else online."""

    code = "colleague_unavailable"
    message = "That colleague cannot be consulted now."


class ColleagueNotAllowed(ChatError):
    code = "colleague_not_allowed"
    message = "This stage does not allow handing a chat to a colleague."
