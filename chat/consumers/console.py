"""/ws/console/: an agent's queues, chats and presence, over the Django session.

The socket follows the chats the agent holds (from connect, a take, an accepted offer or an
assignment) and those it opens from its queues (previews), each through a `ChatStream`. Queue
changes arrive as deltas computed once by the service that made them; the socket passes on those
the agent may see. Who is on the socket is checked again on every action and every few seconds:
an agent who was disabled, lost the console role or logged out is closed with 4403.
"""

import asyncio
import logging
import time
import weakref
from collections import deque
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.exceptions import PermissionDenied

from chat import selectors as chat_selectors
from chat.consumers.protocol import (
    CLOSE_FORBIDDEN,
    MAX_INT,
    FrameError,
    ProtocolConsumer,
    _since,
    mark_seen,
    off_loop,
    store_post,
    validate_frame,
)
from chat.events import (
    ChatRemoved,
    CommandResult,
    Escalated,
    Pong,
    QueueLists,
    Taken,
    Typing,
    agent_group,
    chat_agents_group,
    chat_visitor_group,
    publish_now,
    stage_queue_group,
)
from chat.exceptions import ChatNotFound
from escalation import frames, selectors, services
from escalation.commands import COMMANDS_HELP, Command, parse_command
from escalation.exceptions import ConsoleLoginRevoked, UnknownColleague, UnknownCommand
from escalation.models import Agent, Escalation

logger = logging.getLogger(__name__)

# A typing frame is relayed at most this often per chat while its state does not change.
TYPING_EVERY_SECONDS = 1.0
OPEN_STATUSES = {"queued", "active"}


class ConsoleConsumer(ProtocolConsumer):
    """/ws/console/: an agent's queues, chats and presence, over the Django session."""

    handlers = {
        "subscribe": "on_subscribe",
        "resume": "on_subscribe",
        "message": "on_message",
        "take": "on_take",
        "end": "on_end",
        "presence": "on_presence",
        "read": "on_read",
        "queue": "on_queue",
        "escalate": "on_escalate",
        "escalation.options": "on_escalation_options",
        "offer.accept": "on_offer_accept",
        "offer.decline": "on_offer_decline",
        "ping": "on_ping",
        "typing": "on_typing",
        "tags": "on_tags",
        "consult.options": "on_consult_options",
        "consult.open": "on_consult_open",
        "consult.reply": "on_consult_reply",
        "consult.close": "on_consult_close",
        # Hand-overs the agent stays in the chat for (warm, or to a colleague).
        "handover.request": "on_handover_request",
        "handover.cancel": "on_handover_cancel",
        "handover.accept": "on_handover_accept",
        "handover.decline": "on_handover_decline",
        "handover.take": "on_handover_take",
    }
    agent: Agent

    async def connect(self) -> None:
        self.groups_joined: set[str] = set()
        self.held: set[int] = set()
        self.previewing: set[int] = set()
        self.typing_sent: dict[int, tuple[bool, float]] = {}
        self.gone_entries: deque[int] = deque(maxlen=1000)  # queue entries seen leaving
        user = self.scope.get("user")
        try:
            self.agent = await database_sync_to_async(selectors.get_agent_for_user)(user)
        except PermissionDenied:
            await self.refuse()
            return
        session = self.scope.get("session")
        self.login = (
            self.agent.pk,
            getattr(session, "session_key", None) or "",
            getattr(user, "password", ""),
        )
        self.checked_at = time.monotonic()
        await self.load_membership()
        await self.join(agent_group(self.agent.pk))
        for stage_id in self.stage_ids:
            await self.join(stage_queue_group(stage_id))
        held = await database_sync_to_async(selectors.followed_chat_ids)(agent=self.agent)
        for chat_id in held:
            self.held.add(chat_id)
            self.follow(chat_id, None)
            await self.join(chat_agents_group(chat_id))
        await self.accept()
        await mark_seen(console_agent=self.agent.pk)
        hello = await database_sync_to_async(frames.console_state)(agent=self.agent)
        for row in hello.chats:  # read after joining: delivery goes on from there
            await self.deliver(row["chat"], self.follow(row["chat"], None).start(row["last_seq"]))
        await self.send_frame(hello)
        await self.send_consults()
        watch_for(asyncio.get_running_loop()).add(self)

    async def load_membership(self) -> None:
        self.group_ids, self.stage_ids = await database_sync_to_async(selectors.agent_membership)(
            agent=self.agent
        )

    async def join(self, group: str) -> None:
        if group not in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.add(group)

    async def leave(self, group: str) -> None:
        if group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
            self.groups_joined.discard(group)

    async def leave_groups(self) -> None:
        watch_for(asyncio.get_running_loop()).discard(self)
        for group in list(getattr(self, "groups_joined", ())):
            await self.leave(group)

    async def disconnect(self, code: int) -> None:
        await self.leave_groups()
        if hasattr(self, "agent"):
            # The last sight of this tab: with no other tab open the agent is set offline
            # AGENT_GONE_SECONDS from now (escalation.tasks.sweep_gone_agents), not at once, so
            # that a reload or a dropped connection that comes back changes nothing.
            await mark_seen(console_agent=self.agent.pk)

    # --- Who is on the socket ----------------------------------------------------------------
    @property
    def recheck_due(self) -> bool:
        return time.monotonic() - self.checked_at >= settings.AGENT_ACTION_RECHECK_SECONDS

    async def may_act(self, frame_type: str) -> bool:
        """Before an action, who is acting is checked again (at most once per
        AGENT_ACTION_RECHECK_SECONDS: a burst of frames costs one check). A message's check is
        made by the batch that stores it, with the other posts of the moment (see on_message);
        keep-alives, read marks and typing change nothing that needs it."""
        if frame_type in ("message", "ping", "read", "typing") or not self.recheck_due:
            return True
        self.checked_at = time.monotonic()
        agent_id, session_key, password = self.login
        allowed = await database_sync_to_async(selectors.console_session_valid)(
            agent_id=agent_id, session_key=session_key, password=password
        )
        if not allowed:
            await self.shut(CLOSE_FORBIDDEN)
        return bool(allowed)

    # --- Events --------------------------------------------------------------------------------
    async def chat_event(self, event: dict[str, Any]) -> None:
        payload = event["payload"]
        kind = payload.get("type")
        if kind == "queue.item.added":
            if payload["item"]["entry"] in self.gone_entries:
                return  # its removal came first (two commits' events can cross): not listed
            if frames.may_see_item(
                payload["item"],
                agent_id=self.agent.pk,
                group_ids=self.group_ids,
                stage_ids=self.stage_ids,
            ):
                await self.send_json(payload)
        elif kind == "queue.item.removed":
            self.gone_entries.append(payload["entry"])
            await self.send_json(payload)
            if payload["chat"] in self.previewing:
                await self.stop_preview(payload["chat"])
        elif kind == "chat.assigned":
            await self.hold(payload["chat"])
            await self.send_json(payload)
        elif kind in ("typing", "chat.tags"):
            if payload["chat"] in self.streams:
                await self.send_json(payload)
        elif kind == "consult":
            await self.consult_changed(payload)
        elif kind == "handover.offer.closed":
            await self.send_json(payload)
            if payload["status"] != "accepted" and payload["chat"] in self.previewing:
                await self.stop_viewing(payload["chat"])
        else:
            await super().chat_event(event)

    async def unfollowed(self, payload: dict[str, Any]) -> None:
        if payload["type"] == "chat.removed":
            await self.send_json(payload)  # a chat this socket never opened: still not held

    async def deliver(self, chat_id: int, frames_out: list[dict[str, Any]]) -> None:
        for frame in frames_out:
            await self.send_json(frame)
            kind = frame["type"]
            if kind == "chat.removed" or (
                kind == "chat.status"
                and frame["status"] not in OPEN_STATUSES
                and chat_id not in self.held  # a preview of a chat that ended: nothing follows
            ):
                await self.release(chat_id)

    async def hold(self, chat_id: int) -> None:
        """The chat is now this agent's: follow its stream from the chat's current end."""
        self.held.add(chat_id)
        self.previewing.discard(chat_id)
        stream = self.follow(chat_id, None)
        await self.join(chat_agents_group(chat_id))
        if stream.last is None:
            last = await database_sync_to_async(selectors.chat_last_seq)(chat_id=chat_id)
            await self.deliver(chat_id, stream.start(last))

    async def release(self, chat_id: int) -> None:
        self.held.discard(chat_id)
        self.previewing.discard(chat_id)
        self.unfollow(chat_id)
        await self.leave(chat_agents_group(chat_id))

    async def stop_preview(self, chat_id: int) -> None:
        """A chat opened from the queue left it (taken, moved): the agent may no longer watch it.
        A chat that left because it ended (timed out, missed, abandoned) is still followed up to
        its `chat.status`, which comes after its last notices and ends the preview (`deliver`):
        the agent sees how it ended, as the visitor did."""
        if await database_sync_to_async(chat_selectors.chat_has_ended)(chat_id=chat_id):
            return
        stream = self.streams.get(chat_id)
        last = stream.last if stream is not None and stream.last is not None else 0
        await self.release(chat_id)
        await self.send_frame(ChatRemoved(chat=chat_id, seq=last, reason="no_longer_visible"))

    # --- Actions -------------------------------------------------------------------------------
    async def _may_view(self, chat_id: int) -> None:
        allowed = await database_sync_to_async(selectors.agent_may_view_chat)(
            agent=self.agent, chat_id=chat_id
        )
        if not allowed:
            raise FrameError("not_found", "There is no such chat.")

    async def on_subscribe(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"chat": (int, True), "since": (int, False)})
        chat_id = values["chat"]
        await self._may_view(chat_id)
        if chat_id not in self.held:
            self.previewing.add(chat_id)
        self.follow(chat_id, None)
        await self.join(chat_agents_group(chat_id))
        info = await database_sync_to_async(frames.chat_info)(chat_id=chat_id, agent=self.agent)
        await self.send_frame(info)
        await self.send_replay(chat_id=chat_id, since=_since(values.get("since", 0)))

    async def on_message(self, content: dict[str, Any]) -> None:
        values = validate_frame(
            content,
            {
                "chat": (int, True),
                "text": (str, True),
                "client_id": (str, False),
                "internal": (bool, False),
            },
        )
        command = parse_command(values["text"])
        if command is not None:
            await self.run_command(values["chat"], command, values.get("client_id"))
            return
        check = self.recheck_due
        try:
            message = await store_post(
                services.Post(
                    chat_id=values["chat"],
                    text=values["text"],
                    client_id=values.get("client_id"),
                    agent=self.agent,
                    internal=values.get("internal", False),
                    login=self.login if check else None,
                )
            )
        except ConsoleLoginRevoked:
            await self.shut(CLOSE_FORBIDDEN)
            return
        if check:
            self.checked_at = time.monotonic()
        await self.acknowledge(message)

    async def on_take(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"chat": (int, True)})
        # As the API: a chat that never waited in this agent's queues is "not found", like a
        # missing one; one someone else just took is "already taken".
        visible = await database_sync_to_async(selectors.agent_may_see_chat)(
            agent=self.agent, chat_id=values["chat"], include_past_queues=True
        )
        if not visible:
            raise ChatNotFound()
        await database_sync_to_async(services.take_chat)(chat_id=values["chat"], agent=self.agent)
        await self.hold(values["chat"])
        await self.send_frame(Taken(chat=values["chat"]))

    async def on_offer_accept(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"offer": (int, True)})
        assignment = await database_sync_to_async(services.accept_offer)(
            offer_id=values["offer"], agent=self.agent
        )
        await self.hold(assignment.chat_id)
        await self.send_frame(Taken(chat=assignment.chat_id, offer=values["offer"]))

    async def on_offer_decline(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"offer": (int, True)})
        await database_sync_to_async(services.decline_offer)(
            offer_id=values["offer"], agent=self.agent
        )

    async def on_end(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"chat": (int, True)})
        await database_sync_to_async(services.end_chat_by_agent)(
            chat_id=values["chat"], agent=self.agent
        )

    async def on_tags(self, content: dict[str, Any]) -> None:
        """The agent holding the chat sets its tags (all of them); every console that has the
        chat open gets `chat.tags`."""
        values = validate_frame(content, {"chat": (int, True), "tags": (list, True)})
        tag_ids = values["tags"]
        if len(tag_ids) > 50 or not all(
            isinstance(t, int) and not isinstance(t, bool) and 0 < t <= MAX_INT for t in tag_ids
        ):
            raise FrameError("bad_frame", "Field “tags” is a list of tag ids.")
        await database_sync_to_async(services.set_chat_tags)(
            chat_id=values["chat"], agent=self.agent, tag_ids=tag_ids
        )

    async def on_presence(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"presence": (str, True)})
        if values["presence"] not in Agent.Presence.values:
            raise FrameError("bad_frame", "Presence is one of: online, away, offline.")
        self.agent = await database_sync_to_async(services.set_presence)(
            agent=self.agent, presence=values["presence"]
        )

    async def on_read(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"chat": (int, True), "seq": (int, True)})
        await database_sync_to_async(services.mark_read)(
            chat_id=values["chat"], agent=self.agent, seq=values["seq"]
        )

    async def on_queue(self, content: dict[str, Any]) -> None:
        state = await off_loop(frames.console_state)(agent=self.agent)
        await self.send_frame(
            QueueLists(
                items=state.queue,
                chats=state.chats,
                offers=state.offers,
                handovers=state.handovers,
            )
        )

    async def on_ping(self, content: dict[str, Any]) -> None:
        await mark_seen(console_agent=self.agent.pk)
        await self.send_frame(Pong())

    async def on_typing(self, content: dict[str, Any]) -> None:
        """The agent is typing to the visitor (or stopped): never stored, and the page sends it
        only for replies, never for internal notes. Only for a chat the agent holds."""
        values = validate_frame(content, {"chat": (int, True), "active": (bool, True)})
        chat_id, active, now = values["chat"], values["active"], time.monotonic()
        if chat_id not in self.held:
            raise FrameError("not_your_chat", "You do not hold this chat.")
        last_active, last_at = self.typing_sent.get(chat_id, (False, 0.0))
        if active == last_active and now - last_at < TYPING_EVERY_SECONDS:
            return  # the same news again, too soon: dropped on purpose (documented)
        self.typing_sent[chat_id] = (active, now)
        event = Typing(chat=chat_id, who="agent", name=self.agent.display_name, active=active)
        await publish_now(chat_visitor_group(chat_id), event)

    async def run_command(self, chat_id: int, command: Command, client_id: str | None) -> None:
        """Slash commands: answered on this socket only, never stored in the transcript."""
        if command.name == "help":
            await self.send_frame(
                CommandResult(chat=chat_id, client_id=client_id, text=COMMANDS_HELP)
            )
            return
        # Typed as a `message`, which skips the action re-check (a post's batch makes it):
        # a command changes the chat's holder or who may read it, so it re-checks here.
        if not await self.may_act(f"command.{command.name}"):
            return
        if command.name == "consult":
            await self.consult_command(chat_id, command, client_id)
            return
        if command.name != "escalate":
            raise UnknownCommand(f"Unknown command /{command.name}. {COMMANDS_HELP}")
        if command.keyword.startswith("@"):
            await self.hand_to_colleague(
                chat_id, None, command.keyword, None, command.rest, "", client_id
            )
            return
        await self.escalate(
            chat_id, command.keyword, command.rest, "", Escalation.RequestedBy.COMMAND, client_id
        )

    async def escalate(
        self,
        chat_id: int,
        keyword: str,
        note: str,
        reason: str,
        via: str,
        client_id: str | None = None,
    ) -> None:
        escalation = await off_loop(services.escalate_chat)(
            chat_id=chat_id,
            agent=self.agent,
            keyword=keyword,
            note=note,
            reason=reason,
            requested_by=via,
        )
        # The chat's stream stays open until its `chat.removed` arrives, numbered after the
        # transfer notice: the console shows the hand-over as the visitor saw it, then lets go.
        # A warm escalation keeps the chat here until the receiver takes over.
        text = (
            f"Asked {escalation.target_label} to join; you stay in the chat until one of them "
            "takes over."
            if escalation.warm
            else f"Handed over to {escalation.target_label}. The visitor has been told."
        )
        await self.send_frame(
            Escalated(chat=chat_id, client_id=client_id, to=escalation.target_label, text=text)
        )

    async def on_escalate(self, content: dict[str, Any]) -> None:
        values = validate_frame(
            content,
            {
                "chat": (int, True),
                "target": (str, True),
                "note": (str, False),
                "reason": (str, False),
            },
        )
        await self.escalate(
            values["chat"],
            values["target"],
            values.get("note", ""),
            values.get("reason", ""),
            Escalation.RequestedBy.BUTTON,
        )

    async def on_escalation_options(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"chat": (int, True)})
        options = await database_sync_to_async(frames.escalation_options_for)(
            agent=self.agent, chat_id=values["chat"]
        )
        await self.send_frame(options)

    # --- Consults: an internal thread with a colleague on a chat ------------------------------
    async def send_consults(self) -> None:
        """The open consults this agent asked or is asked in (on connect and after a resync)."""
        for event in await database_sync_to_async(frames.open_consults_for)(agent=self.agent):
            await self.send_frame(event)

    async def consult_changed(self, payload: dict[str, Any]) -> None:
        """A consult this agent takes part in changed. A colleague reading the chat for it who
        may no longer (the consult closed, or another member of the group answered) stops
        following it, and is told so with `chat.removed` `consult_closed`."""
        await self.send_json(payload)
        chat_id = payload["chat"]
        if chat_id not in self.previewing or payload["asked_by_id"] == self.agent.pk:
            return
        closed_to_me = payload["status"] != "open" or payload["answered_by_id"] not in (
            None,
            self.agent.pk,
        )
        if not closed_to_me:
            return
        await self.stop_viewing(chat_id, reason="consult_closed")

    async def stop_viewing(self, chat_id: int, reason: str = "no_longer_visible") -> None:
        """What let the agent read a chat it previews closed (a consult, a hand-over offer):
        unless something else still lets it, it stops following the chat and is told why."""
        allowed = await database_sync_to_async(selectors.agent_may_view_chat)(
            agent=self.agent, chat_id=chat_id
        )
        if not allowed:
            stream = self.streams.get(chat_id)
            last = stream.last if stream is not None and stream.last is not None else 0
            await self.release(chat_id)
            await self.send_frame(ChatRemoved(chat=chat_id, seq=last, reason=reason))

    async def on_consult_options(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"chat": (int, True)})
        options = await database_sync_to_async(frames.consult_options_for)(
            agent=self.agent, chat_id=values["chat"]
        )
        await self.send_frame(options)

    async def on_consult_open(self, content: dict[str, Any]) -> None:
        """The holder asks a colleague (`agent`) or a group (`group`): `text` is the question."""
        values = validate_frame(
            content,
            {
                "chat": (int, True),
                "agent": (int, False),
                "group": (int, False),
                "text": (str, True),
            },
        )
        await self.open_consult(
            values["chat"], values["text"], values.get("agent"), values.get("group")
        )

    async def open_consult(
        self, chat_id: int, text: str, colleague_id: int | None, group_id: int | None
    ) -> None:
        _, message = await off_loop(services.open_consult)(
            chat_id=chat_id,
            agent=self.agent,
            question=text,
            colleague_id=colleague_id,
            group_id=group_id,
        )
        await self.acknowledge(message)

    async def consult_command(self, chat_id: int, command: Command, client_id: str | None) -> None:
        """`/consult @name question`: `@name` an online colleague's user name, or a group's name
        with hyphens for spaces. Alone, it lists whom the agent may consult."""
        options = await database_sync_to_async(frames.consult_options_for)(
            agent=self.agent, chat_id=chat_id
        )
        listed = "; ".join(
            [f"@{c['handle']} ({c['name']})" for c in options.colleagues]
            + [f"@{g['handle']} ({g['name']}, {g['online']} online)" for g in options.groups]
        )
        usage = (
            f"Usage: /consult @name <question>. Online colleagues and groups: {listed or 'none'}."
        )
        if not command.keyword.startswith("@") or not command.rest:
            raise UnknownColleague(usage)
        colleague, group = await database_sync_to_async(selectors.find_colleague)(
            handle=command.keyword
        )
        if colleague is not None and group is not None:
            raise UnknownColleague(
                f"{command.keyword} names both {colleague.display_name} and the group "
                f"{group.name}: use the Consult button to choose."
            )
        if colleague is None and group is None:
            raise UnknownColleague(f"Nobody is called {command.keyword}. {usage}")
        await self.open_consult(
            chat_id,
            command.rest,
            colleague.pk if colleague is not None else None,
            group.pk if group is not None else None,
        )
        to = colleague.display_name if colleague is not None else group.name if group else ""
        await self.send_frame(
            CommandResult(chat=chat_id, client_id=client_id, text=f"You asked {to}.")
        )

    async def on_consult_reply(self, content: dict[str, Any]) -> None:
        """The holder or the colleague writes to the consult's thread."""
        values = validate_frame(
            content, {"consult": (int, True), "text": (str, True), "client_id": (str, False)}
        )
        message = await off_loop(services.post_consult_message)(
            consult_id=values["consult"],
            agent=self.agent,
            text=values["text"],
            client_id=values.get("client_id"),
        )
        await self.acknowledge(message)

    async def on_consult_close(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"consult": (int, True)})
        await off_loop(services.close_consult)(consult_id=values["consult"], agent=self.agent)

    # --- Hand-overs the agent stays in the chat for ---------------------------------------------
    async def hand_to_colleague(
        self,
        chat_id: int,
        colleague_id: int | None,
        colleague_name: str,
        warm: bool | None,
        note: str,
        reason: str,
        client_id: str | None = None,
    ) -> None:
        escalation = await off_loop(services.hand_to_colleague)(
            chat_id=chat_id,
            agent=self.agent,
            colleague_id=colleague_id,
            colleague_name=colleague_name,
            warm=warm,
            note=note,
            reason=reason,
            requested_by=(
                Escalation.RequestedBy.COMMAND
                if colleague_id is None
                else Escalation.RequestedBy.BUTTON
            ),
        )
        await self.send_frame(
            Escalated(
                chat=chat_id,
                client_id=client_id,
                to=escalation.target_label,
                text=f"Asked {escalation.target_label} to take the chat; it stays with you until "
                "they accept.",
            )
        )

    async def on_handover_request(self, content: dict[str, Any]) -> None:
        """Hand the chat you hold to a colleague (the Escalate dialog's picker)."""
        values = validate_frame(
            content,
            {
                "chat": (int, True),
                "colleague": (int, True),
                "warm": (bool, False),
                "note": (str, False),
                "reason": (str, False),
            },
        )
        await self.hand_to_colleague(
            values["chat"],
            values["colleague"],
            "",
            values.get("warm"),
            values.get("note", ""),
            values.get("reason", ""),
        )

    async def on_handover_cancel(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"chat": (int, True)})
        await off_loop(services.cancel_handover)(chat_id=values["chat"], agent=self.agent)

    async def on_handover_accept(self, content: dict[str, Any]) -> None:
        """Accept a hand-over offered to you: warm, you join the chat (and follow it); cold, it
        is yours (`chat.assigned` follows)."""
        values = validate_frame(content, {"handover": (int, True)})
        handover = await off_loop(services.accept_handover)(
            handover_id=values["handover"], agent=self.agent
        )
        await self.hold(handover.chat_id)
        if not handover.warm:
            await self.send_frame(Taken(chat=handover.chat_id))

    async def on_handover_decline(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"handover": (int, True)})
        await off_loop(services.decline_handover)(handover_id=values["handover"], agent=self.agent)

    async def on_handover_take(self, content: dict[str, Any]) -> None:
        """You joined the chat to take it over: now you hold it, and the first agent leaves."""
        values = validate_frame(content, {"chat": (int, True)})
        await off_loop(services.take_over)(chat_id=values["chat"], agent=self.agent)

    async def resync(self) -> None:
        """After lost events: the groups again, each followed chat's messages after the last one
        delivered, the end of chats the agent lost meanwhile, and fresh lists."""
        await self.load_membership()
        await self.join(agent_group(self.agent.pk))
        for stage_id in self.stage_ids:
            await self.join(stage_queue_group(stage_id))
        held = set(await database_sync_to_async(selectors.followed_chat_ids)(agent=self.agent))
        for chat_id in held - self.held:
            await self.hold(chat_id)
        for chat_id in sorted(self.streams):
            stream = self.streams[chat_id]
            await self.send_replay(chat_id=chat_id, since=stream.last or 0)
            if chat_id in self.held and chat_id not in held:
                reason = await database_sync_to_async(selectors.last_end_reason)(
                    agent=self.agent, chat_id=chat_id
                )
                last = stream.last or 0
                await self.release(chat_id)
                await self.send_frame(ChatRemoved(chat=chat_id, seq=last, reason=reason))
        await self.on_queue({})
        await self.send_consults()


class ConsoleWatch:
    """The console sockets of one event loop, checked together every AGENT_RECHECK_SECONDS: one
    set of queries for all of them (selectors.invalid_console_logins), not a task and queries per
    socket, so that a process with thousands of consoles checks them as cheaply as a few."""

    def __init__(self) -> None:
        self.consoles: set[ConsoleConsumer] = set()
        self.task: asyncio.Task[None] | None = None

    def add(self, console: ConsoleConsumer) -> None:
        self.consoles.add(console)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self.run())

    def discard(self, console: ConsoleConsumer) -> None:
        self.consoles.discard(console)

    async def run(self) -> None:
        while self.consoles:
            await asyncio.sleep(settings.AGENT_RECHECK_SECONDS)
            consoles = list(self.consoles)
            logins = {console.login for console in consoles}
            try:
                revoked = await off_loop(selectors.invalid_console_logins)(logins)
            except Exception:  # the database is away: the next tick tries again
                logger.warning("checking the consoles' agents failed", exc_info=True)
                continue
            for console in consoles:
                if console.login in revoked:
                    await console.shut(CLOSE_FORBIDDEN)


_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ConsoleWatch] = (
    weakref.WeakKeyDictionary()
)


def watch_for(loop: asyncio.AbstractEventLoop) -> ConsoleWatch:
    watch = _watches.get(loop)
    if watch is None:
        watch = _watches[loop] = ConsoleWatch()
    return watch
