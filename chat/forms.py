import functools
import json
import zoneinfo
from datetime import date
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.conf import settings
from django.core.validators import MaxLengthValidator, RegexValidator

from chat.attributes import Attributes, AttributesError, parse_attributes
from escalation.models import PATTERN_KINDS, Agent, CannedReply, Pipeline, PreChatField, Site
from escalation.selectors import start_form_pipelines


class TruncatedCharField(forms.CharField):
    """Context the browser fills in, not the visitor (a referrer, a page title): cut to
    max_length rather than refused. Refused, it re-showed the start form with an error on a hidden
    field that nobody could see or fix, and that visitor could never start a chat."""

    def to_python(self, value: Any) -> str:
        text: str = super().to_python(value) or ""
        return text[: self.max_length] if self.max_length is not None else text


# The pre-chat answers a chat keeps: key -> {"label": ..., "value": ...} (JSON values).
Answers = dict[str, dict[str, Any]]

ANSWER_MAX_CHARS: dict[str, int] = {PreChatField.Kind.LONG_TEXT: 2000}
DEFAULT_PATTERN_ERROR = "This is not in the expected format."
VISITOR_WITHOUT_NAME = "Visitor"


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())  # read from disk: once per process


def prechat_form_field(question: PreChatField) -> forms.Field:
    """The form field that asks one pre-chat question, with its own clear error messages."""
    kinds = PreChatField.Kind
    messages = {"required": f"Please fill in “{question.label}”."}
    common: dict[str, Any] = {
        "label": question.label,
        "required": question.is_required,
        "help_text": question.help_text,
    }
    field: forms.Field
    if question.kind == kinds.NUMBER:
        messages["invalid"] = "Enter a number, e.g. 12 or 3.5."
        field = forms.DecimalField(
            max_digits=18,
            decimal_places=6,
            widget=forms.NumberInput(attrs={"step": "any"}),
            error_messages=messages,
            **common,
        )
    elif question.kind == kinds.CHOICE:
        messages["invalid_choice"] = "Choose one of the listed options."
        field = forms.ChoiceField(
            choices=[("", "Choose…"), *((c, c) for c in question.choice_list)],
            error_messages=messages,
            **common,
        )
    elif question.kind == kinds.CHECKBOX:
        messages["required"] = f"Please tick “{question.label}” to go on."
        field = forms.BooleanField(error_messages=messages, **common)
    elif question.kind == kinds.DATE:
        messages["invalid"] = "Enter a date as YYYY-MM-DD, e.g. 2026-03-31."
        field = forms.DateField(
            widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            error_messages=messages,
            **common,
        )
    elif question.kind == kinds.EMAIL:
        messages["invalid"] = "Enter an e-mail address, e.g. name@example.com."
        field = forms.EmailField(error_messages=messages, **common)
    else:  # text, long text, order number
        limit = ANSWER_MAX_CHARS.get(question.kind, 200)
        messages["max_length"] = f"At most {limit} characters, please."
        widget = forms.Textarea(attrs={"rows": 3}) if question.kind == kinds.LONG_TEXT else None
        field = forms.CharField(max_length=limit, widget=widget, error_messages=messages, **common)
    if question.pattern and question.kind in PATTERN_KINDS:
        field.validators.append(
            RegexValidator(
                # The whole answer must match, not a part of it.
                regex=rf"\A(?:{question.pattern})\Z",
                message=question.pattern_error or DEFAULT_PATTERN_ERROR,
            )
        )
    return field


def answer_value(value: Any) -> Any:
    """An answer as JSON keeps it: dates as YYYY-MM-DD, whole numbers as integers."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


class PreChatForm(forms.Form):
    """One pipeline's own questions, prefixed with the pipeline (`p<id>-<key>`) so that a start
    page may carry the questions of several pipelines side by side. The start form holds one per
    pipeline; a start page limited to one pipeline (the embeddable widget's) may use one alone,
    rendered with templates/chat/_prechat_fields.html."""

    def __init__(self, *args: Any, pipeline: Pipeline, **kwargs: Any) -> None:
        kwargs.setdefault("prefix", f"p{pipeline.pk}")
        super().__init__(*args, **kwargs)
        self.pipeline = pipeline
        self.questions = list(pipeline.prechat_fields.all())
        for question in self.questions:
            self.fields[question.key] = prechat_form_field(question)

    @property
    def topic_names(self) -> list[str]:
        return [topic.name for topic in self.pipeline.topics.all()]

    @property
    def topics_json(self) -> str:
        """The topics that lead here, for the start page's script (an escaped attribute)."""
        return json.dumps(self.topic_names)

    def answers(self) -> Answers:
        """The valid answers given (unanswered optional questions left out). Each keeps its
        question's position: PostgreSQL's jsonb does not keep the order of an object's keys."""
        return {
            q.key: {
                "label": q.label,
                "value": answer_value(self.cleaned_data[q.key]),
                "position": q.position,
            }
            for q in self.questions
            if self.cleaned_data.get(q.key) not in (None, "")
        }


class StartChatForm(forms.Form):
    """Name, e-mail, topic and first message, plus the questions of the chosen topic's
    pipeline. Every pipeline's questions are on the page (a script shows the chosen topic's
    only); only the chosen pipeline's are checked and kept, so a page without scripts works
    too. Whether the name is asked and the e-mail required is the chosen pipeline's rule."""

    name = forms.CharField(max_length=100, label="Your name", required=False)
    email = forms.EmailField(
        required=False,
        label="E-mail",
        error_messages={"invalid": "Enter an e-mail address, e.g. name@example.com."},
    )
    topic = forms.ChoiceField(label="Topic", error_messages={"required": "Please choose a topic."})
    message = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="How can we help?")
    # What the visitor's browser tells (static/chat/start.js), never refused: see above.
    page = TruncatedCharField(required=False, max_length=500, widget=forms.HiddenInput)
    page_title = TruncatedCharField(required=False, max_length=300, widget=forms.HiddenInput)
    referrer = TruncatedCharField(required=False, max_length=500, widget=forms.HiddenInput)
    time_zone = TruncatedCharField(required=False, max_length=64, widget=forms.HiddenInput)
    utc_offset = TruncatedCharField(required=False, max_length=6, widget=forms.HiddenInput)
    # From the widget: the custom attributes the company's page set (JSON; checked by widget.js
    # before it is sent, and again here).
    attributes = forms.CharField(required=False, max_length=16_384, widget=forms.HiddenInput)

    def __init__(
        self,
        *args: Any,
        pipelines: list[Pipeline] | None = None,
        site: Site | None = None,
        **kwargs: Any,
    ) -> None:
        """`site`: the start form of that site's widget (its pipeline's topics only)."""
        super().__init__(*args, **kwargs)
        if pipelines is None:
            only = site.pipeline_id if site is not None else None
            pipelines = start_form_pipelines(pipeline_id=only)
        self.prechat_forms = [PreChatForm(*args, pipeline=p, **kwargs) for p in pipelines]
        topics = sorted(
            (topic for p in pipelines for topic in p.topics.all()),
            key=lambda t: (t.position, t.name),
        )
        self.pipeline_of_topic = {t.name: t.pipeline_id for t in topics}
        topic_field = cast(forms.ChoiceField, self.fields["topic"])
        topic_field.choices = [("", "Choose a topic…")] + [(t.name, t.name) for t in topics]
        if len(topics) == 1:  # nothing to choose: the only topic goes with the form
            topic_field.widget = forms.HiddenInput()
            topic_field.initial = topics[0].name
            topic_field.required = False  # a form sent without it means the only topic
        self.fields["message"].validators.append(MaxLengthValidator(settings.MESSAGE_MAX_CHARS))

    @property
    def has_topics(self) -> bool:
        return bool(self.pipeline_of_topic)

    @property
    def single_topic(self) -> bool:
        return len(self.pipeline_of_topic) == 1

    def chosen_prechat(self) -> PreChatForm | None:
        """The questions of the topic the visitor chose (or of the only topic there is)."""
        topic = self.data.get("topic", "") if self.is_bound else ""
        if not topic and self.single_topic:
            topic = next(iter(self.pipeline_of_topic))
        pipeline_id = self.pipeline_of_topic.get(topic)
        return next((f for f in self.prechat_forms if f.pipeline.pk == pipeline_id), None)

    def prechat_sections(self) -> list[tuple[PreChatForm, bool]]:
        """Each pipeline's questions and whether the page shows them before any script runs:
        once a topic is chosen, that topic's only; before, all of them (each headed with its
        topics), so that a browser without scripts shows the questions of any topic chosen.
        The start page's script then shows only the chosen topic's."""
        chosen = self.chosen_prechat()
        return [(f, chosen is None or f is chosen) for f in self.prechat_forms]

    @property
    def asks_name(self) -> bool:
        """Whether the name is asked, before any script runs: the chosen pipeline's rule, or
        asked if any pipeline asks it."""
        chosen = self.chosen_prechat()
        pipelines = [chosen.pipeline] if chosen else [f.pipeline for f in self.prechat_forms]
        return any(p.asks_name for p in pipelines) or not pipelines

    @property
    def email_requirement(self) -> str:
        """ "required" or "optional", before any script runs: the chosen pipeline's rule, or
        required only if every pipeline requires it."""
        chosen = self.chosen_prechat()
        pipelines = [chosen.pipeline] if chosen else [f.pipeline for f in self.prechat_forms]
        required = bool(pipelines) and all(p.requires_email for p in pipelines)
        return "required" if required else "optional"

    @property
    def names_topics(self) -> bool:
        """Whether the questions are headed with their topics (several pipelines ask some)."""
        return sum(1 for f in self.prechat_forms if f.questions) > 1

    def clean_topic(self) -> str:
        topic: str = self.cleaned_data["topic"]
        return topic or (next(iter(self.pipeline_of_topic)) if self.single_topic else "")

    def clean_time_zone(self) -> str:
        zone: str = self.cleaned_data["time_zone"]
        return zone if zone in _time_zones() else ""

    def clean_utc_offset(self) -> int | None:
        """Minutes east of UTC, as the browser said (a value that is no offset is dropped)."""
        text: str = self.cleaned_data["utc_offset"]
        try:
            minutes = int(text)
        except ValueError:
            return None
        return minutes if -15 * 60 <= minutes <= 15 * 60 else None

    def clean_attributes(self) -> Attributes:
        text: str = self.cleaned_data["attributes"]
        if not text:
            return {}
        try:
            return parse_attributes(json.loads(text))
        except (ValueError, RecursionError):
            raise forms.ValidationError("The page's custom attributes are not JSON.") from None
        except AttributesError as exc:
            raise forms.ValidationError(f"The page's custom attributes: {exc}") from None

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        # A hidden field's error shows nowhere: say it above the form (only a page that went
        # around widget.js's own checks can get here).
        hidden_errors = self.errors.pop("attributes", None)
        if hidden_errors:
            self.add_error(None, list(hidden_errors))
        name = cleaned.get("name", "").strip()
        if self.asks_name and not name and "name" in cleaned:
            self.add_error("name", "Please tell us your name.")
        cleaned["name"] = name or VISITOR_WITHOUT_NAME
        if self.email_requirement == "required" and cleaned.get("email") == "":
            self.add_error("email", "Please give your e-mail address, so that we can reply.")
        return cleaned

    def is_valid(self) -> bool:
        valid = super().is_valid()
        chosen = self.chosen_prechat()
        return (chosen is None or chosen.is_valid()) and valid

    def answers(self) -> Answers:
        """The chosen pipeline's answers; call after is_valid()."""
        chosen = self.chosen_prechat()
        return chosen.answers() if chosen is not None else {}

    def visitor_context(self) -> dict[str, Any]:
        """What the browser told about the visitor's page and clock, without empty values."""
        data = self.cleaned_data
        context = {
            "page": data["page"],
            "page_title": data["page_title"],
            "referrer": data["referrer"],
            "time_zone": data["time_zone"],
            "utc_offset_minutes": data["utc_offset"],
            "attributes": data.get("attributes"),
        }
        return {key: value for key, value in context.items() if value not in ("", None, {})}


RATING_ERROR = "Choose a rating from 1 (poor) to 5 (great)."


class SurveyForm(forms.Form):
    rating = forms.TypedChoiceField(
        choices=[(n, str(n)) for n in range(1, 6)],
        coerce=int,
        error_messages={"required": RATING_ERROR, "invalid_choice": RATING_ERROR},
    )
    comment = forms.CharField(
        required=False,
        max_length=2000,
        error_messages={"max_length": "A comment is at most 2,000 characters."},
    )


class TranscriptEmailForm(forms.Form):
    email = forms.EmailField(label="E-mail")


class OfflineMessageForm(forms.Form):
    email = forms.EmailField(label="E-mail")
    text = forms.CharField(label="Message", max_length=4000)


class CannedReplyForm(forms.ModelForm):  # type: ignore[type-arg]
    """An agent's own saved reply (group and global ones are managed in admin)."""

    class Meta:
        model = CannedReply
        fields = ["shortcut", "title", "text"]
        widgets = {"text": forms.Textarea(attrs={"rows": 4})}
        labels = {"shortcut": "Shortcut (typed as #shortcut)"}

    def __init__(self, *args: Any, owner: Agent, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner = owner
        self.instance.owner = owner
        self.fields["text"].validators.append(MaxLengthValidator(settings.MESSAGE_MAX_CHARS))

    def clean_shortcut(self) -> str:
        # The owner is not a field of the form, so Django would skip the unique constraint.
        shortcut: str = self.cleaned_data["shortcut"].lower()
        taken = CannedReply.objects.filter(owner=self.owner, shortcut=shortcut)
        if self.instance.pk is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError(f"You already have a reply with the shortcut #{shortcut}.")
        return shortcut
