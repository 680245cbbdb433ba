"""Domain errors. Each has a stable `code` that the websocket protocol and the API send as is."""


class ChatError(Exception):
    code = "chat_error"
    message = "The chat cannot do that."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message


class ChatStillOpen(ChatError):
    code = "chat_open"
    message = "The transcript can be e-mailed once the chat has ended."


class ChatNotFound(ChatError):
    code = "not_found"
    message = "There is no such chat."


class ChatClosed(ChatError):
    code = "chat_closed"
    message = "This chat has ended."


class InvalidTransition(ChatError):
    code = "invalid_transition"

    def __init__(self, old: str, new: str) -> None:
        super().__init__(f"A chat that is {old} cannot become {new}.")


class InvalidMessage(ChatError):
    code = "invalid_message"


class AttachmentRefused(ChatError):
    """A file that may not be sent: empty, of a type not allowed, or not what its name says."""

    code = "attachment_refused"
    message = "This file cannot be sent."


class AttachmentTooLarge(AttachmentRefused):
    code = "attachment_too_large"


class AttachmentLinkExpired(ChatError):
    code = "link_expired"
    message = "This link to the file has expired. Reload the chat page for a fresh one."
