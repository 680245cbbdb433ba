"""The demo's history: weeks of simulated traffic played through the real services, so that a
fresh demo has reports, charts, wait estimates and past chats to look at.

How it runs:

- A simulated clock (time-machine): the services read `timezone.now()`, so each step runs at its
  simulated time and stores it, as it would have then. The replay ends at the real now, so that
  "today" and "the last 7 days" have data.
- One queue of due actions in time order: visitors arriving (escalation.demo_traffic), the
  agents' shifts and breaks, their replies, and the tasks the services schedule.
- Those tasks (wait-timeouts, offer lapses, still-searching notices, queue publishes) come to
  the replay instead of the broker (`timers.scheduled_in_process`) and run by name at their
  simulated times, as a Celery worker runs them.
- The events that consoles and visitors' pages would get come to the replay in the process
  (`chat.events.delivered_in_process`), not to the channel layer; the simulated agents and
  visitors react to them as people do: accept an offer or let it lapse, take from a manual
  queue, reply, escalate, leave a message, rate the chat.

Every chat it starts is marked in its visitor_context (DEMO_MARK), so that it is told apart from
real chats: a second load finds the history there, and a reset deletes these chats only.
"""

import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import time_machine
from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Min, QuerySet
from django.test.utils import override_settings
from django.utils import timezone

from chat import events
from chat import services as chat_services
from chat.exceptions import ChatError
from chat.models import ChatSession
from escalation import demo_traffic, selectors, services
from escalation.demo import AGENTS, DEMO_SITE
from escalation.models import (
    Agent,
    ChatRoute,
    Escalation,
    QueueEntry,
    Site,
    Tag,
    Topic,
)
from escalation.services import timers

DEMO_MARK = "demo_history"  # visitor_context key of the chats the replay starts
DEFAULT_DAYS = 90
DEFAULT_SEED = 2024
MAX_DAYS = 365
# No chat starts in the last stretch before the end, so that every chat is over by then.
QUIET_BEFORE_END = timedelta(hours=2)


@dataclass
class History:
    """What a replay made."""

    first: datetime
    last: datetime
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def chats(self) -> int:
        return self.counts["chats"]


def demo_history_chats() -> QuerySet[ChatSession]:
    """The chats the replay started (and no other)."""
    return ChatSession.objects.filter(**{f"visitor_context__{DEMO_MARK}": True})


def history_span() -> tuple[datetime, datetime] | None:
    """When the stored demo history starts and ends, or None if there is none."""
    span = demo_history_chats().aggregate(first=Min("created_at"), last=Max("created_at"))
    if span["first"] is None:
        return None
    return span["first"], span["last"]


@transaction.atomic
def delete_demo_history() -> int:
    """Delete the demo history's chats with everything that hangs on them (messages, flow,
    queue entries, offers, assignments, escalations, estimates, surveys, tags). Real chats stay.
    Returns how many chats were deleted."""
    chats = demo_history_chats()
    count = chats.count()
    # Escalations first: each protects its queue entry, which the chat's deletion would
    # otherwise reach before it.
    Escalation.objects.filter(chat__in=chats).delete()
    chats.delete()
    return count


class HistoryRefused(Exception):
    """The history cannot be played now; the message says why."""


def replay_history(
    *, days: int = DEFAULT_DAYS, seed: int = DEFAULT_SEED, end: datetime | None = None
) -> History:
    """Play `days` days of traffic up to `end` (now) through the services. The same seed and the
    same end give the same history."""
    if not 1 <= days <= MAX_DAYS:
        raise HistoryRefused(f"The history is 1 to {MAX_DAYS} days long, not {days}.")
    # A server at work shares the database: its beat would fire the replay's past deadlines
    # and sweep its simulated visitors and agents mid-replay, and a chat arriving during it
    # could reach a simulated agent. An agent console seen within AGENT_GONE_SECONDS means one
    # is running (a console marks itself seen while it is open); the replay waits for it to stop.
    seen_since = timezone.now() - timedelta(seconds=settings.AGENT_GONE_SECONDS)
    if Agent.objects.filter(console_seen_at__gte=seen_since).exists():
        raise HistoryRefused(
            "an agent console was open in the last "
            f"{settings.AGENT_GONE_SECONDS} s, so the server looks to be running; stop it, "
            "then load the demo again (make run plays the history before it starts the server)."
        )
    open_chats = ChatSession.objects.filter(status__in=ChatSession.OPEN_STATUSES).count()
    if open_chats:
        # The simulated agents would take them, at a time before they began.
        raise HistoryRefused(
            f"{open_chats} chat(s) are still waiting or active; the history is played only "
            "when none is (end them, or load the demo again later)."
        )
    end = end or timezone.now()
    tz = timezone.get_default_timezone()
    first_day = timezone.localtime(end, tz).date() - timedelta(days=days)
    replay = _Replay(first_day=first_day, end=end, seed=seed)
    with _sqlite_commits_unsynced():
        replay.run()
    return History(first=replay.start, last=end, counts=replay.counts)


@contextmanager
def _sqlite_commits_unsynced() -> Iterator[None]:
    """On SQLite, commits that do not wait for the disk while the replay writes: it commits
    some ten thousand small transactions, and waiting for each to reach the disk took about a
    quarter of its time. Only this connection, only meanwhile; a power cut in that minute could
    damage the database file (a crash of the process cannot)."""
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        before = cursor.execute("PRAGMA synchronous").fetchone()[0]
        cursor.execute("PRAGMA synchronous = OFF")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA synchronous = {int(before)}")


@dataclass(order=True)
class _Due:
    at: datetime
    order: int
    action: Callable[[], None] = field(compare=False)


# An agent's or visitor's script: a generator that acts, then yields the seconds until its next
# step (see _Replay.play).
Script = Iterator[float]


class _Replay:
    def __init__(self, *, first_day: date, end: datetime, seed: int) -> None:
        self.tz = timezone.get_default_timezone()
        self.rng = random.Random(seed)  # noqa: S311 - a simulation, no secret
        self.first_day = first_day
        self.start = datetime.combine(first_day, time(0), tzinfo=self.tz)
        self.end = end
        self.arrivals_until = end - QUIET_BEFORE_END
        self.now = self.start
        self.queue: list[_Due] = []
        self.order = itertools.count()
        self.traveller: Any = None
        self.counts: Counter[str] = Counter()
        self.agents = {
            a.user.username: a
            for a in Agent.objects.select_related("user").filter(user__username__in=AGENTS)
        }
        self.names = {agent.pk: username for username, agent in self.agents.items()}
        self.on_duty: dict[str, bool] = dict.fromkeys(self.agents, False)
        self.presence_before = {username: a.presence for username, a in self.agents.items()}
        self.pipeline_of = dict(Topic.objects.values_list("name", "pipeline__name"))
        self.tag_ids = dict(Tag.objects.filter(is_active=True).values_list("name", "pk"))
        self.site = Site.objects.filter(name=DEMO_SITE).first()
        self.visitors: dict[int, demo_traffic.Visitor] = {}
        # The visitor whose chat is starting: the events of its start come before start_chat
        # returns the chat (see visitor_of).
        self.arriving: demo_traffic.Visitor | None = None
        self.gone: set[int] = set()  # chats whose visitor has left the page
        self.waits_seen: set[int] = set()  # queue entries the visitor is already waiting in
        self.hand_picked: set[int] = set()  # waiting entries that agents pick by hand
        # What went wrong in a callback after a commit (where Django only logs it), raised again
        # by the main loop: a replay that went wrong stops.
        self.failure: BaseException | None = None
        # The tasks are named, not imported (escalation.tasks is a face): Celery's loader imports
        # the task modules as a worker does at its start.
        current_app.loader.import_default_modules()

    # --- The clock and the queue of due actions ---------------------------------------------
    def at(self, when: datetime, action: Callable[[], None]) -> None:
        heapq.heappush(self.queue, _Due(max(when, self.now), next(self.order), action))

    def after(self, seconds: float, action: Callable[[], None]) -> None:
        self.at(self.now + timedelta(seconds=seconds), action)

    def play(self, script: Script) -> None:
        """Run a script's next step now and schedule the one after. A chat that ended or moved
        under a script (the visitor left, a timeout) ends the script, as it ends a person's."""
        try:
            delay = next(script)
        except (StopIteration, ChatError):
            return
        self.after(delay, lambda: self.play(script))

    def run(self) -> None:
        with (
            time_machine.travel(self.start, tick=False) as self.traveller,
            events.delivered_in_process(self.on_event),
            timers.scheduled_in_process(self.on_task),
            # Nobody is e-mailed about a message left weeks ago.
            override_settings(EMAIL_ENABLED=False),
        ):
            day = self.first_day
            while (day_start := datetime.combine(day, time(0), tzinfo=self.tz)) < self.end:
                self.at(day_start, lambda d=day: self.begin_day(d))  # type: ignore[misc]
                day += timedelta(days=1)
            while self.queue and self.queue[0].at <= self.end:
                due = heapq.heappop(self.queue)
                if due.at > self.now:
                    self.traveller.shift(due.at - self.now)
                    self.now = due.at
                due.action()
                if self.failure is not None:
                    raise self.failure
            self.close_what_is_open()
        self.counts["chats"] = demo_history_chats().filter(created_at__gte=self.start).count()

    def on_task(self, task_name: str, args: tuple[Any, ...], countdown: float) -> None:
        """A task the services scheduled: run it by name when its time comes."""
        try:
            task = current_app.tasks[task_name]
        except BaseException as exc:
            self.failure = exc
            return
        self.after(countdown, lambda: task(*args))

    # --- Days, shifts and breaks ---------------------------------------------------------------
    def begin_day(self, day: date) -> None:
        day_start = datetime.combine(day, time(0), tzinfo=self.tz)
        for when, topic in demo_traffic.arrivals(day_start, self.rng):
            if self.start <= when <= self.arrivals_until:
                self.at(when, lambda t=topic: self.arrive(t))  # type: ignore[misc]
        for username in self.agents:
            shift = demo_traffic.shift_on(username, day)
            if shift is None or self.rng.random() < demo_traffic.DAY_OFF_CHANCE:
                continue
            self.plan_shift(username, day, shift)

    def plan_shift(self, username: str, day: date, shift: demo_traffic.Shift) -> None:
        def local(at: time, jitter_minutes: float) -> datetime:
            when = datetime.combine(day, at, tzinfo=self.tz)
            return when + timedelta(minutes=self.rng.uniform(-jitter_minutes, jitter_minutes))

        start, end = local(shift.start, 10), local(shift.end, 10)
        self.at(start, lambda: self.set_presence(username, Agent.Presence.ONLINE, on_duty=True))
        self.at(end, lambda: self.set_presence(username, Agent.Presence.OFFLINE, on_duty=False))
        breaks = []
        if shift.lunch_at is not None:
            breaks.append(
                (local(shift.lunch_at, 15), shift.lunch_minutes * self.rng.uniform(0.8, 1.3))
            )
        for away_at, minutes in breaks:
            back_at = away_at + timedelta(minutes=minutes)
            self.at(
                away_at, lambda: self.set_presence(username, Agent.Presence.AWAY, on_duty=False)
            )
            self.at(back_at, lambda: self.back_from_break(username, shift_end=end))

    def set_presence(self, username: str, presence: str, *, on_duty: bool) -> None:
        self.on_duty[username] = on_duty
        services.set_presence(agent=self.agents[username], presence=presence)
        if on_duty:
            self.after(self.rng.uniform(5, 30), lambda: self.look_at_queues(username))

    def back_from_break(self, username: str, *, shift_end: datetime) -> None:
        if self.now < shift_end:
            self.set_presence(username, Agent.Presence.ONLINE, on_duty=True)

    # --- What consoles and pages are told -------------------------------------------------------
    def on_event(self, group: str, event: events.Event) -> None:
        """An event, after the commit that made it: schedule how its reader reacts. (Acting here
        would run a service inside another one's commit.)"""
        try:
            self.react(group, event)
        except BaseException as exc:
            self.failure = exc

    def react(self, group: str, event: events.Event) -> None:
        kind, _, rest = group.partition(".")
        if kind == "agent":
            username = self.names.get(int(rest))
            if username is not None:
                self.agent_told(username, event)
        elif kind == "queue" and isinstance(event, events.QueueItemAdded):
            self.queued(event.item)
        elif kind == "queue" and isinstance(event, events.QueueItemRemoved):
            self.hand_picked.discard(event.entry)
        elif kind == "chat" and rest.endswith(".visitor") and isinstance(event, events.ChatStatus):
            self.visitor_told_end(event)

    def agent_told(self, username: str, event: events.Event) -> None:
        if isinstance(event, events.ChatAssigned):
            self.play(self.conversation(event.chat, username))
        elif isinstance(event, events.OfferMade):
            self.answer_offer(username, event.offer)
        elif isinstance(event, events.ChatRemoved):
            self.after(self.rng.uniform(5, 40), lambda: self.look_at_queues(username))
        elif isinstance(event, events.PresenceChanged) and event.reason and self.on_duty[username]:
            # Set away by unanswered offers: back at the desk a few minutes later.
            self.after(self.rng.uniform(60, 300), lambda: self.back_online(username))
        elif isinstance(event, events.QueueItemAdded):
            self.queued(event.item)  # a chat narrowed to this agent

    def back_online(self, username: str) -> None:
        if self.on_duty[username]:
            self.set_presence(username, Agent.Presence.ONLINE, on_duty=True)

    def answer_offer(self, username: str, offer_id: int) -> None:
        agent, choice = self.agents[username], self.rng.random()
        if choice < 0.78:
            self.after(
                self.rng.uniform(3, 18),
                lambda: self.attempt(services.accept_offer, offer_id=offer_id, agent=agent),
            )
        elif choice < 0.86:
            self.after(
                self.rng.uniform(2, 8),
                lambda: self.attempt(services.decline_offer, offer_id=offer_id, agent=agent),
            )
        # else: not answered (a hunt offer lapses at its deadline)

    def attempt(self, service: Callable[..., Any], **kwargs: Any) -> Any:
        """Call a service whose refusal is part of the story (the chat was taken meanwhile, the
        agent is full): refused, it changes nothing, as for a person."""
        try:
            return service(**kwargs)
        except ChatError as exc:
            self.counts[f"refused: {exc.code}"] += 1
            return None

    def queued(self, item: dict[str, Any]) -> None:
        """A chat joined a queue: its visitor waits (for a while), and the agents who pick chats
        by hand have a look at their queues."""
        entry_id, chat_id = item["entry"], item["chat"]
        if entry_id in self.waits_seen:
            return  # the same wait, told to another console
        self.waits_seen.add(entry_id)
        visitor = self.visitor_of(chat_id)
        if visitor is not None and chat_id not in self.gone:
            patience = (
                visitor.patience_seconds
                if item["reason"] == QueueEntry.Reason.START
                else self.rng.expovariate(1 / 420)
            )
            self.after(patience, lambda: self.lose_patience(chat_id, entry_id))
        entry = QueueEntry.objects.select_related("stage").get(pk=entry_id)
        if self.routed(entry):
            return  # the system assigns or offers it
        self.hand_picked.add(entry_id)
        for username, on_duty in self.on_duty.items():
            if on_duty:
                self.after(self.rng.uniform(10, 90), lambda u=username: self.look_at_queues(u))  # type: ignore[misc]

    def look_at_queues(self, username: str) -> None:
        """The agent looks at its console's queues and takes the longest waiting chat of a group
        that picks by hand, if it is online with a free place."""
        if not self.hand_picked:
            return  # nothing waits for a pick by hand (every queue of the console says so)
        agent = Agent.objects.get(pk=self.agents[username].pk)
        if agent.presence != Agent.Presence.ONLINE:
            return
        if selectors.agent_load(agent) >= selectors.effective_capacity(agent):
            return
        waiting = QueueEntry.objects.filter(left_at__isnull=True).select_related("stage", "group")
        for entry in waiting.order_by(*selectors.QUEUE_ORDER):
            if not self.routed(entry) and selectors.can_serve(agent=agent, entry=entry):
                self.attempt(services.take_chat, chat_id=entry.chat_id, agent=agent)
                return

    def routed(self, entry: QueueEntry) -> bool:
        """Whether the system assigns or offers the chat (else agents pick it by hand)."""
        policy, _ = selectors.routing_of(entry)
        return policy is not None

    def visitor_told_end(self, event: events.ChatStatus) -> None:
        chat_id = event.chat
        if chat_id in self.gone or chat_id not in self.visitors:
            return
        self.gone.add(chat_id)  # the page has done its part once the chat is over
        if event.status == ChatSession.Status.MISSED and self.rng.random() < 0.5:
            self.after(self.rng.uniform(20, 120), lambda: self.leave_message(chat_id))
        elif event.status == ChatSession.Status.ENDED and self.rng.random() < 0.45:
            self.after(self.rng.uniform(5, 60), lambda: self.rate(chat_id))

    # --- Visitors -------------------------------------------------------------------------------
    def arrive(self, topic: str | None) -> None:
        visitor = self.arriving = demo_traffic.visitor(self.rng, self.pipeline_of, topic)
        chat = services.start_chat(
            visitor_name=visitor.name,
            visitor_email=visitor.email,
            topic_name=visitor.topic,
            first_message=visitor.first_message,
            visitor_context={**visitor.context, DEMO_MARK: True},
            fields=visitor.answers or None,
            site=self.site if visitor.by_widget else None,
        )
        self.visitors[chat.pk], self.arriving = visitor, None
        services.visitor_hello(chat=chat)  # the chat page connects and shows the wait

    def visitor_of(self, chat_id: int) -> demo_traffic.Visitor | None:
        """The visitor of a demo chat; a chat not seen before is the one starting now (every
        open chat is the replay's: it starts only when no other chat is open)."""
        if chat_id not in self.visitors and self.arriving is not None:
            self.visitors[chat_id] = self.arriving
        return self.visitors.get(chat_id)

    def lose_patience(self, chat_id: int, entry_id: int) -> None:
        route = ChatRoute.objects.filter(chat_id=chat_id).values_list("entry_id", flat=True)
        if route.first() != entry_id or chat_id in self.gone:
            return  # no longer waiting there
        self.gone.add(chat_id)
        if not self.visitors[chat_id].closes_tab:
            services.end_chat_by_visitor(chat_id=chat_id)
            return
        # The page stops answering: the sweep of gone visitors notices after a while.
        chat_services.mark_visitors_seen(chat_ids=[chat_id])
        gone_after = settings.VISITOR_GONE_SECONDS + self.rng.uniform(1, 15)
        self.after(gone_after, lambda: self.sweep_gone_visitor(chat_id))

    def sweep_gone_visitor(self, chat_id: int) -> None:
        """What the periodic sweep does for this chat (the others' pages are still there)."""
        seen_before = self.now - timedelta(seconds=settings.VISITOR_GONE_SECONDS)
        if not services.abandon_if_visitor_gone(chat_id=chat_id, seen_before=seen_before):
            services.end_if_visitor_gone(chat_id=chat_id, seen_before=seen_before)

    def leave_message(self, chat_id: int) -> None:
        visitor = self.visitors[chat_id]
        text = self.rng.choice(demo_traffic.LEFT_MESSAGES)
        self.attempt(
            services.leave_offline_message, chat_id=chat_id, text=text, email=visitor.email
        )

    def rate(self, chat_id: int) -> None:
        waits = QueueEntry.objects.filter(chat_id=chat_id, left_at__isnull=False)
        waited = 0.0
        for entered, left in waits.values_list("entered_at", "left_at"):
            waited += (left - entered).total_seconds() if left else 0.0
        transfers = Escalation.objects.filter(chat_id=chat_id).count()
        rating = demo_traffic.survey_rating(self.rng, waited_seconds=waited, transfers=transfers)
        comment = self.rng.choice(demo_traffic.SURVEY_COMMENTS[rating])
        self.attempt(services.answer_survey, chat_id=chat_id, rating=rating, comment=comment)

    # --- Conversations --------------------------------------------------------------------------
    def conversation(self, chat_id: int, username: str) -> Script:
        """An agent's turn with a chat, from the greeting to its end or hand-over."""
        agent, rng = self.agents[username], self.rng
        route = ChatRoute.objects.select_related("stage__pipeline", "tier").get(chat_id=chat_id)
        visitor = self.visitor_of(chat_id)
        slow = {1: 1.0, 2: 1.5}.get(route.tier.level, 2.0)
        names = {
            "visitor": (visitor.name if visitor else "there").split()[0],
            "agent": agent.display_name,
        }
        # The first reply: mostly within a minute, sometimes much later.
        yield rng.uniform(5, 40) if rng.random() < 0.85 else rng.uniform(60, 240)
        if visitor is None or chat_id in self.gone:
            yield from self.follow_up(chat_id, agent, names)
            return
        self.say(chat_id, agent, rng.choice(demo_traffic.AGENT_GREETINGS).format(**names))
        for _ in range(rng.randint(0, 2) + (route.tier.level > 1)):
            yield rng.uniform(20, 90) * slow
            if chat_id in self.gone:
                break
            services.post_visitor_message(
                chat_id=chat_id, text=rng.choice(demo_traffic.VISITOR_LINES)
            )
            yield rng.uniform(20, 120) * slow
            self.say(chat_id, agent, rng.choice(demo_traffic.AGENT_LINES))
        if rng.random() < 0.15:
            self.say(chat_id, agent, rng.choice(demo_traffic.INTERNAL_NOTES), internal=True)
        keyword = self.escalation_for(route)
        if keyword and chat_id not in self.gone:
            yield rng.uniform(10, 40)
            option = route.stage.escalation_options.get(keyword=keyword)
            self.say(chat_id, agent, demo_traffic.HANDING_OVER.format(team=option.label))
            yield rng.uniform(5, 20)
            escalated = self.attempt(
                services.escalate_chat,
                chat_id=chat_id,
                agent=agent,
                keyword=keyword,
                note=rng.choice(demo_traffic.HANDOVER_NOTES[keyword]),
                reason=rng.choice(demo_traffic.REASON_FOR[keyword]),
                requested_by=rng.choice(
                    (Escalation.RequestedBy.COMMAND, Escalation.RequestedBy.BUTTON)
                ),
            )
            if escalated is not None:
                return
            # Refused (nobody there for that target): the agent sees it through.
            self.say(
                chat_id, agent, "They're not available right now, so I'll take care of it myself."
            )
        if chat_id in self.gone:
            return
        if rng.random() < 0.05:  # the visitor had enough
            services.end_chat_by_visitor(chat_id=chat_id)
            return
        yield rng.uniform(15, 60) * slow
        self.say(chat_id, agent, rng.choice(demo_traffic.AGENT_CLOSINGS))
        yield from self.wrap_up(chat_id, agent, visitor.topic)
        if rng.random() < 0.15:
            services.end_chat_by_visitor(chat_id=chat_id)  # closed by the visitor after thanks
        else:
            services.end_chat_by_agent(chat_id=chat_id, agent=agent)

    def follow_up(self, chat_id: int, agent: Agent, names: dict[str, str]) -> Script:
        """A chat whose visitor left before anyone answered (a drop stage's queue): the agent
        writes what the visitor will find later, and ends it."""
        self.say(chat_id, agent, demo_traffic.FOLLOW_UP.format(**names))
        yield self.rng.uniform(20, 90)
        yield from self.wrap_up(chat_id, agent, "Where is my order?")
        services.end_chat_by_agent(chat_id=chat_id, agent=agent)

    def wrap_up(self, chat_id: int, agent: Agent, topic: str) -> Script:
        if self.rng.random() < 0.8:
            names = self.rng.sample(demo_traffic.TAGS_FOR[topic], k=self.rng.randint(1, 2))
            services.set_chat_tags(
                chat_id=chat_id,
                agent=agent,
                tag_ids=[self.tag_ids[n] for n in names if n in self.tag_ids],
            )
        yield self.rng.uniform(10, 45)

    def say(self, chat_id: int, agent: Agent, text: str, *, internal: bool = False) -> None:
        services.post_agent_message(chat_id=chat_id, agent=agent, text=text, internal=internal)

    def escalation_for(self, route: ChatRoute) -> str | None:
        """The escalation option keyword this turn ends with, if any."""
        if route.tier.level == 1:
            shares = demo_traffic.ESCALATIONS.get(route.stage.pipeline.name, {})
        elif route.tier.level == 2:
            shares = demo_traffic.ESCALATIONS["L2"]
        else:
            return None
        roll = self.rng.random()
        for keyword, share in shares.items():
            if roll < share:
                return (
                    keyword
                    if route.stage.escalation_options.filter(keyword=keyword).exists()
                    else None
                )
            roll -= share
        return None

    # --- The end --------------------------------------------------------------------------------
    def close_what_is_open(self) -> None:
        """No demo chat stays open past the replay (no page or console is behind it), and the
        agents' presence is as it was before."""
        for chat_id in (
            demo_history_chats()
            .filter(status__in=ChatSession.OPEN_STATUSES)
            .values_list("pk", flat=True)
        ):
            self.counts["closed at the end"] += 1
            services.end_chat_by_visitor(chat_id=chat_id)
        for username, presence in self.presence_before.items():
            agent = Agent.objects.get(pk=self.agents[username].pk)
            if agent.presence != presence:
                services.set_presence(agent=agent, presence=presence)
