"""/ws/console/: an agent's queues, chats and presence, over the Django session."""

import asyncio
import logging
from typing import Any

from channels.db import database_sync_to_async
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from chat.consumers.protocol import (
    FrameError,
    ProtocolConsumer,
    _since,
    off_loop,
    store_post,
    validate_frame,
)
from chat.events import PROTOCOL_VERSION, agent_group, chat_agents_group, stage_queue_group
from chat.models import Message
from escalation import frames, selectors, services
from escalation.commands import COMMANDS_HELP, Command, parse_command
from escalation.exceptions import UnknownCommand
from escalation.models import Agent, Escalation

logger = logging.getLogger(__name__)


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
    }
    agent: Agent

    async def connect(self) -> None:
        self.groups_joined: set[str] = set()
        self.previewing: set[int] = set()
        try:
            self.agent = await database_sync_to_async(selectors.get_agent_for_user)(
                self.scope["user"]
            )
        except PermissionDenied:
            await self.refuse()
            return
        await self.join(agent_group(self.agent.pk))
        for stage_id in await database_sync_to_async(selectors.served_stage_ids)(agent=self.agent):
            await self.join(stage_queue_group(stage_id))
        chat_ids = await database_sync_to_async(selectors.open_assignment_chat_ids)(
            agent=self.agent
        )
        for chat_id in chat_ids:
            await self.join(chat_agents_group(chat_id))
        await self.accept()
        await database_sync_to_async(services.mark_console_seen)(agent_id=self.agent.pk)
        state = await database_sync_to_async(frames.console_state)(agent=self.agent)
        await self.send_json({**state, "v": PROTOCOL_VERSION})

    async def join(self, group: str) -> None:
        if group not in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.add(group)

    async def leave(self, group: str) -> None:
        if group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
            self.groups_joined.discard(group)

    async def disconnect(self, code: int) -> None:
        for group in list(getattr(self, "groups_joined", ())):
            await self.leave(group)
        if hasattr(self, "agent"):
            # The last sight of this tab: with no other tab open the agent is set offline
            # AGENT_GONE_SECONDS from now (escalation.tasks.sweep_gone_agents), not at once, so
            # that a reload or a dropped connection that comes back changes nothing.
            await database_sync_to_async(services.mark_console_seen)(agent_id=self.agent.pk)

    async def chat_event(self, event: dict[str, Any]) -> None:
        payload = event["payload"]
        kind = payload.get("type")
        chat_id = payload.get("chat")
        if kind in ("message", "chat.status") and (
            chat_agents_group(chat_id) not in self.groups_joined
        ):
            return  # already in the channel when this socket left the chat's group: drop it
        if kind in ("message", "chat.status") and chat_id in self.previewing:
            # Watching a chat this agent does not hold (it waited in its queue): stop as soon as
            # the agent may no longer see it, e.g. another agent took it.
            allowed = await database_sync_to_async(selectors.agent_may_view_chat)(
                agent=self.agent, chat_id=chat_id
            )
            if not allowed:
                self.previewing.discard(chat_id)
                await self.leave(chat_agents_group(chat_id))
                await self.send_json(
                    {
                        "type": "chat.removed",
                        "v": PROTOCOL_VERSION,
                        "chat": chat_id,
                        "reason": "no_longer_visible",
                    }
                )
                return
        if kind == "chat.assigned":
            self.previewing.discard(payload["chat"])
            await self.join(chat_agents_group(payload["chat"]))
        elif kind == "chat.removed":
            await self.leave(chat_agents_group(payload["chat"]))
        elif kind == "queue.changed":
            await self.refresh_queue_soon()
            return
        await self.send_json(payload)

    async def _may_view(self, chat_id: int) -> None:
        allowed = await database_sync_to_async(selectors.agent_may_view_chat)(
            agent=self.agent, chat_id=chat_id
        )
        if not allowed:
            raise FrameError("forbidden", "You cannot open this chat.")

    async def on_subscribe(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"chat": (int, True), "since": (int, False)})
        chat_id = values["chat"]
        await self._may_view(chat_id)
        held = await database_sync_to_async(selectors.open_assignment_chat_ids)(agent=self.agent)
        if chat_id not in held:
            self.previewing.add(chat_id)
        await self.join(chat_agents_group(chat_id))
        info = await database_sync_to_async(frames.chat_info)(chat_id=chat_id)
        await self.send_json({**info, "v": PROTOCOL_VERSION})
        await self.send_replay(
            chat_id=chat_id, since=_since(values.get("since", 0)), for_visitor=False
        )

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
        message: Message = await store_post(
            services.Post(
                chat_id=values["chat"],
                text=values["text"],
                client_id=values.get("client_id"),
                agent=self.agent,
                internal=values.get("internal", False),
            )
        )
        await self.send_json(
            {
                "type": "ack",
                "v": PROTOCOL_VERSION,
                "chat": message.chat_id,
                "client_id": message.client_id,
                "seq": message.seq,
            }
        )

    async def on_take(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"chat": (int, True)})
        await database_sync_to_async(services.take_chat)(chat_id=values["chat"], agent=self.agent)
        self.previewing.discard(values["chat"])
        await self.join(chat_agents_group(values["chat"]))
        await self.send_json({"type": "taken", "v": PROTOCOL_VERSION, "chat": values["chat"]})

    async def on_offer_accept(self, content: dict[str, Any]) -> None:
        values = validate_frame(content, {"offer": (int, True)})
        assignment = await database_sync_to_async(services.accept_offer)(
            offer_id=values["offer"], agent=self.agent
        )
        self.previewing.discard(assignment.chat_id)
        await self.join(chat_agents_group(assignment.chat_id))
        await self.send_json(
            {
                "type": "taken",
                "v": PROTOCOL_VERSION,
                "chat": assignment.chat_id,
                "offer": values["offer"],
            }
        )

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
        await self.send_json(
            {
                "type": "queue",
                "v": PROTOCOL_VERSION,
                "items": state["queue"],
                "chats": state["chats"],
                "offers": state["offers"],
            }
        )

    async def on_ping(self, content: dict[str, Any]) -> None:
        await database_sync_to_async(services.mark_console_seen)(agent_id=self.agent.pk)
        await self.send_json({"type": "pong", "v": PROTOCOL_VERSION})

    async def run_command(self, chat_id: int, command: Command, client_id: str | None) -> None:
        """Slash commands: answered on this socket only, never stored in the transcript."""
        if command.name == "help":
            await self.send_json(
                {
                    "type": "command.result",
                    "v": PROTOCOL_VERSION,
                    "chat": chat_id,
                    "client_id": client_id,
                    "text": COMMANDS_HELP,
                }
            )
            return
        if command.name != "escalate":
            raise UnknownCommand(f"Unknown command /{command.name}. {COMMANDS_HELP}")
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
        await self.leave(chat_agents_group(chat_id))
        await self.send_json(
            {
                "type": "escalated",
                "v": PROTOCOL_VERSION,
                "chat": chat_id,
                "client_id": client_id,
                "to": escalation.target_label,
                "text": f"Handed over to {escalation.target_label}. The visitor has been told.",
            }
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
        await self.send_json({"type": "escalation.options", "v": PROTOCOL_VERSION, **options})

    async def resync(self) -> None:
        """After lost events: the groups of the chats this agent holds, each chat's messages
        after the last one sent, and fresh queue and chat lists."""
        await self.join(agent_group(self.agent.pk))
        for stage_id in await database_sync_to_async(selectors.served_stage_ids)(agent=self.agent):
            await self.join(stage_queue_group(stage_id))
        held = set(
            await database_sync_to_async(selectors.open_assignment_chat_ids)(agent=self.agent)
        )
        for chat_id in held:
            await self.join(chat_agents_group(chat_id))
        sent = self.__dict__.get("last_sent_seq", {})
        for group in sorted(self.groups_joined):
            if not group.startswith("chat."):
                continue
            chat_id = int(group.split(".")[1])
            if chat_id not in held and chat_id not in self.previewing:
                await self.leave(group)
                continue
            await self.send_replay(chat_id=chat_id, since=sent.get(chat_id, 0), for_visitor=False)
        await self.on_queue({})

    async def push_queue(self) -> None:
        """The queue list alone (a `queue` frame without `chats` and `offers`): what a queue change
        changes. The agent's own chats and offers have their own events, after which the page asks
        for full lists; reading only the queue halves the work a queue change costs per console."""
        items = await off_loop(frames.queue_for_agent)(agent=self.agent, now=timezone.now())
        await self.send_json({"type": "queue", "v": PROTOCOL_VERSION, "items": items})

    async def refresh_queue_soon(self) -> None:
        """Send a fresh queue for a `queue.changed`, without holding up this socket's other events;
        changes that arrive while a refresh runs are covered by one more refresh after it."""
        self.queue_dirty = True
        task = getattr(self, "queue_refresh", None)
        if task is None or task.done():
            self.queue_refresh = asyncio.ensure_future(self._refresh_queue())

    async def _refresh_queue(self) -> None:
        try:
            while getattr(self, "queue_dirty", False):
                self.queue_dirty = False
                await self.push_queue()
        except Exception:  # the socket closed meanwhile: its next connect sends fresh lists
            logger.debug("queue refresh after close", exc_info=True)
