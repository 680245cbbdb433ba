"""The demo history's traffic model: who comes when, about what, what they say, how long they
wait, and when the demo agents work. Pure: a seeded `random.Random` in, plain values out; no
database, no clock (escalation.demo_history plays it through the services).

The numbers are a small web shop's support desk: two or three chats on a weekday, peaking late
in the morning and again after lunch, fewer at the weekend, a few at night when nobody is there,
and now and then a burst when something breaks. Small, because every chat goes through the
services (about 170 queries each) and the whole history loads in well under a minute.
"""

import math
import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

# Chats on an average weekday; the other days are a share of it (Monday busiest, Sunday least).
WEEKDAY_CHATS = 2.5
DAY_SHARE = (1.15, 1.0, 1.0, 0.95, 0.9, 0.45, 0.3)  # Monday .. Sunday
# How a day's chats spread over its hours (site time), in relative weights.
HOUR_WEIGHT = (
    *(0.004,) * 6,  # 00-06
    0.012,
    0.03,
    0.065,
    0.09,
    0.1,
    0.095,  # 06-12
    0.075,
    0.085,
    0.09,
    0.085,
    0.07,
    0.055,  # 12-18
    0.045,
    0.035,
    0.028,
    0.024,
    0.016,
    0.012,  # 18-24
)

# Topic (as in escalation.demo) and its share of the chats.
TOPICS = {
    "Billing": 0.2,
    "Technical problem": 0.22,
    "Something else": 0.08,
    "Buying": 0.1,
    "Where is my order?": 0.24,
    "Return an item": 0.16,
}
# Now and then something breaks (an update, a courier) and chats about it come in a burst:
# queues form, visitors wait and get estimates, some give up.
BURST_CHANCE = 0.1  # per weekday
BURST_CHATS = 14
BURST_MINUTES = 30
BURST_TOPICS = ("Technical problem", "Where is my order?")
WIDGET_SHARE = 0.35  # chats started from the demo shop's widget rather than the chat page


@dataclass(frozen=True)
class Shift:
    """An agent's day: online from `start` to `end` (site time), away for `lunch` minutes at
    `lunch_at`."""

    start: time
    end: time
    lunch_at: time | None = None
    lunch_minutes: int = 0


def _shift(start: str, end: str, lunch: str | None = None, minutes: int = 0) -> Shift:
    return Shift(
        time.fromisoformat(start),
        time.fromisoformat(end),
        time.fromisoformat(lunch) if lunch else None,
        minutes,
    )


# username -> shift on each weekday (0 = Monday); a day missing is a day off. Saturdays are
# covered by one level 1 agent in turn (even weeks Alex, odd weeks Blair) and by Taylor. The
# level 1 agents, who take most chats, go away for lunch.
SHIFTS: dict[str, dict[int, Shift]] = {
    "alex": {d: _shift("08:00", "16:30", "12:00", 40) for d in range(5)},
    "blair": {d: _shift("11:00", "19:30", "15:00", 30) for d in range(5)},
    "sam": {d: _shift("09:00", "17:00") for d in range(5)},
    "kim": {d: _shift("08:30", "16:30") for d in range(4)},
    "taylor": {d: _shift("12:00", "20:00") for d in range(1, 6)},
    "jordan": {d: _shift("10:00", "18:00") for d in range(5)},
}
SATURDAY = _shift("10:00", "15:00")
DAY_OFF_CHANCE = 0.04


def shift_on(username: str, day: date) -> Shift | None:
    weekday = day.weekday()
    if weekday == 5 and username in ("alex", "blair"):
        turn = "alex" if day.isocalendar().week % 2 == 0 else "blair"
        return SATURDAY if username == turn else None
    return SHIFTS.get(username, {}).get(weekday)


def arrivals(day_start: datetime, rng: random.Random) -> list[tuple[datetime, str | None]]:
    """The chats that start on the day beginning at `day_start` (local midnight, aware): when,
    and their topic when a burst decides it (None: the visitor's own)."""
    mean = WEEKDAY_CHATS * DAY_SHARE[day_start.weekday()] / sum(HOUR_WEIGHT)
    found: list[tuple[datetime, str | None]] = []
    for hour, weight in enumerate(HOUR_WEIGHT):
        for _ in range(_poisson(mean * weight, rng)):
            found.append((day_start + timedelta(hours=hour, seconds=rng.uniform(0, 3600)), None))
    if day_start.weekday() < 5 and rng.random() < BURST_CHANCE:
        topic = rng.choice(BURST_TOPICS)
        begins = day_start + timedelta(hours=rng.uniform(9, 16))
        for _ in range(BURST_CHATS + rng.randint(-2, 2)):
            found.append((begins + timedelta(minutes=rng.uniform(0, BURST_MINUTES)), topic))
    return sorted(found, key=lambda arrival: arrival[0])


def _poisson(mean: float, rng: random.Random) -> int:
    """Knuth's method: fine for the small means of one hour."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


# --- Visitors -------------------------------------------------------------------------------------
FIRST_NAMES = [
    "Ava",
    "Ben",
    "Chloe",
    "Daniel",
    "Emma",
    "Felix",
    "Grace",
    "Hugo",
    "Isla",
    "Jack",
    "Karin",
    "Leo",
    "Maya",
    "Noah",
    "Olivia",
    "Pablo",
    "Quinn",
    "Rosa",
    "Sofia",
    "Theo",
    "Uma",
    "Victor",
    "Wen",
    "Xavier",
    "Yara",
    "Zoe",
    "Amir",
    "Bea",
    "Carlos",
    "Dina",
    "Elif",
    "Farid",
    "Greta",
    "Hana",
    "Ivan",
    "Jonas",
    "Lena",
    "Marco",
    "Nina",
    "Omar",
    "Priya",
    "Rahul",
    "Sara",
    "Tomas",
    "Vera",
]
LAST_NAMES = [
    "Andersen",
    "Baker",
    "Costa",
    "Dubois",
    "Evans",
    "Fischer",
    "Garcia",
    "Hansen",
    "Ito",
    "Jensen",
    "Kowalski",
    "Larsen",
    "Moreau",
    "Novak",
    "Okafor",
    "Petrov",
    "Quist",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Umarov",
    "Virtanen",
    "Weber",
    "Young",
    "Zhang",
]
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
    "Safari/537.36",
)
LANGUAGES = ("en-GB,en;q=0.9", "en-US,en;q=0.9", "de-DE,de;q=0.8,en;q=0.6", "fr-FR,fr;q=0.8")
TIME_ZONES = (("Europe/London", 0), ("Europe/Berlin", 60), ("America/New_York", -300))
PAGES = {
    "Billing": ("/account/invoices", "Your invoices"),
    "Technical problem": ("/help/troubleshooting", "Troubleshooting"),
    "Something else": ("/contact", "Contact us"),
    "Buying": ("/pricing", "Plans and pricing"),
    "Where is my order?": ("/account/orders", "Your orders"),
    "Return an item": ("/returns", "Returns and refunds"),
}
REFERRERS = ("https://www.google.com/", "", "", "https://duckduckgo.com/", "https://t.co/x")
FIRST_MESSAGES = {
    "Billing": (
        "I was charged twice for my subscription this month.",
        "Can I get an invoice with my company's VAT number on it?",
        "My card was declined but the money left my account.",
        "Why did my bill go up this month?",
    ),
    "Technical problem": (
        "The app crashes as soon as I open the reports.",
        "I can't log in, the page just reloads.",
        "Sync has stopped working since yesterday's update.",
        "Export to CSV gives me an empty file.",
    ),
    "Something else": (
        "Do you have an office in Berlin?",
        "How do I change the e-mail address on my account?",
        "I'd like to give some feedback on the new design.",
    ),
    "Buying": (
        "What's the difference between the Team and Business plans?",
        "Do you offer a discount for non-profits?",
        "Can we pay yearly by bank transfer?",
    ),
    "Where is my order?": (
        "My order hasn't arrived yet, it's been a week.",
        "The tracking link says the parcel is stuck in transit.",
        "I got a delivery notice but no parcel.",
        "Can I still change the delivery address?",
    ),
    "Return an item": (
        "The shoes are too small, how do I send them back?",
        "I received a damaged item and want a refund.",
        "Where do I print the returns label?",
    ),
}
VISITOR_LINES = (
    "Thanks. It's on the account under this e-mail.",
    "Yes, that's right.",
    "I tried that already, it didn't help.",
    "Ok, one moment please.",
    "It started on Monday.",
    "Sure, the order number is on the receipt.",
    "That would be great.",
    "Hm, I'm not sure. Where do I find that?",
    "Done. Anything else you need?",
    "Great, that worked!",
)
AGENT_GREETINGS = (
    "Hi {visitor}, thanks for waiting! Let me have a look.",
    "Hello {visitor}, I'm {agent}. I'll check that for you.",
    "Hi {visitor}! Happy to help, one moment while I pull up your account.",
)
AGENT_LINES = (
    "I can see the account, thanks. Could you tell me when this started?",
    "Could you try logging out and in again?",
    "I've checked and can confirm what you describe.",
    "Thanks for your patience, I'm nearly there.",
    "That's done now, you'll get a confirmation by e-mail.",
    "Could you send me the order number, please?",
    "I've made a note of it on your account.",
    "Let me check with the warehouse, one moment.",
)
AGENT_CLOSINGS = (
    "Is there anything else I can help with?",
    "Glad that's sorted. Have a nice day!",
    "You're all set. Thanks for contacting us!",
)
HANDING_OVER = "I'll pass you to {team}, they can sort this out. Your chat stays open."
FOLLOW_UP = (
    "Hi {visitor}, sorry we missed you earlier. Your parcel is with the courier and should "
    "arrive within two working days; we've sent the tracking link to your e-mail."
)
INTERNAL_NOTES = (
    "Customer since 2021, no earlier complaints.",
    "Checked the payment provider: one refund pending.",
    "Same issue as last week's incident, see the status page.",
)
HANDOVER_NOTES = {
    "billing": (
        "Double charge confirmed in the payment log; needs a refund.",
        "Asks for an invoice correction, account checked.",
        "Disputed invoice, already checked the account.",
    ),
    "technical": (
        "Crash reproduced on their side, logs attached to the account.",
        "Sync fails after the update; cache cleared, still failing.",
    ),
    "engineering": (
        "Looks like a server-side bug: export empty for accounts with more than 10k rows.",
        "Error 500 on the reports page, reproduced twice.",
    ),
    "seniors": ("Long-standing customer, wants a goodwill credit.",),
}
LEFT_MESSAGES = (
    "Please call me back about my order, thanks.",
    "Nobody was there, please answer by e-mail.",
    "I'll try again tomorrow morning. The issue is the invoice from last month.",
)
SURVEY_COMMENTS = {
    5: ("Quick and friendly, thank you!", "Solved in minutes.", ""),
    4: ("Good help, the wait was a bit long.", ""),
    3: ("Okay in the end.", ""),
    2: ("Took too long and I had to explain twice.",),
    1: ("Waited ages and nothing was solved.",),
}
# What the level 1 agents of each pipeline escalate to, and how often (keyword: share).
ESCALATIONS = {
    "Support": {"billing": 0.14, "technical": 0.12, "engineering": 0.03, "seniors": 0.02},
    "Orders": {"billing": 0.06},
    "Sales": {"billing": 0.05},
    "L2": {"engineering": 0.1},  # from the level 2 stages
}
# The escalation reason an agent picks for each keyword (labels of escalation.demo.REASONS).
REASON_FOR = {
    "billing": ("Billing question", "Customer asked for a specialist"),
    "technical": ("Technical fault",),
    "engineering": ("Needs engineering", "Technical fault"),
    "seniors": ("Customer asked for a specialist",),
}
TAGS_FOR = {
    "Billing": ("Billing question", "Refund"),
    "Technical problem": ("Bug report", "How-to", "Account access"),
    "Something else": ("Feedback", "How-to", "Account access"),
    "Buying": ("How-to", "Billing question"),
    "Where is my order?": ("How-to", "Refund"),
    "Return an item": ("Refund", "Feedback"),
}


@dataclass(frozen=True)
class Visitor:
    name: str
    email: str
    topic: str
    first_message: str
    context: dict[str, Any]
    answers: dict[str, dict[str, Any]]
    by_widget: bool
    patience_seconds: float  # how long they wait in a queue before leaving
    closes_tab: bool  # leaves by closing the page (else by the End button)


def visitor(rng: random.Random, pipeline_of: dict[str, str], topic: str | None = None) -> Visitor:
    """A visitor and their first message (about `topic`, or one of their own choice);
    `pipeline_of`: topic -> pipeline name."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    topic = topic or rng.choices(list(TOPICS), weights=list(TOPICS.values()))[0]
    page, title = PAGES[topic]
    zone, offset = rng.choice(TIME_ZONES)
    context: dict[str, Any] = {
        "page": f"https://shop.example.com{page}",
        "page_title": title,
        "time_zone": zone,
        "utc_offset_minutes": offset,
        "user_agent": rng.choice(USER_AGENTS),
        "language": rng.choice(LANGUAGES),
    }
    if referrer := rng.choice(REFERRERS):
        context["referrer"] = referrer
    by_widget = rng.random() < WIDGET_SHARE
    if by_widget:
        context["attributes"] = {
            "plan": rng.choice(("Free", "Team", "Business")),
            "customer_id": f"C-{rng.randint(10000, 99999)}",
        }
    return Visitor(
        name=f"{first} {last}",
        email=f"{first}.{last}@example.com".lower() if rng.random() < 0.7 else "",
        topic=topic,
        first_message=rng.choice(FIRST_MESSAGES[topic]),
        context=context,
        answers=_answers(pipeline_of[topic], rng),
        by_widget=by_widget,
        # Most wait a few minutes; some give up within one, a few stay a long time.
        patience_seconds=min(rng.expovariate(1 / 180), 1800),
        closes_tab=rng.random() < 0.5,
    )


def _answers(pipeline: str, rng: random.Random) -> dict[str, dict[str, Any]]:
    """Answers to the start form's questions of escalation.demo (each optional)."""
    answers: dict[str, dict[str, Any]] = {}
    if pipeline == "Support":
        if rng.random() < 0.6:
            number = f"{rng.choice('ABCDEFGH')}{rng.choice('KLMNPR')}-{rng.randint(0, 999999):06d}"
            answers["order-number"] = {"label": "Order number", "value": number, "position": 1}
        if rng.random() < 0.8:
            product = rng.choice(("Tierline Cloud", "Tierline Self-hosted", "Mobile app"))
            answers["product"] = {"label": "Product", "value": product, "position": 2}
    elif pipeline == "Sales" and rng.random() < 0.7:
        company = rng.choice(("Northwind", "Acme GmbH", "Globex", "Initech", "Umbrella Ltd"))
        answers["company"] = {"label": "Company", "value": company, "position": 0}
    return answers


def survey_rating(rng: random.Random, *, waited_seconds: float, transfers: int) -> int:
    """A rating from 1 to 5: most are happy; long waits and transfers cost points."""
    score = 4.6 - min(waited_seconds / 240, 2.0) - 0.5 * transfers + rng.gauss(0, 0.8)
    return max(1, min(5, round(score)))
