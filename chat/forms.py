import json
from typing import Any, cast

from django import forms
from django.conf import settings
from django.core.validators import MaxLengthValidator

from chat.attributes import Attributes, AttributesError, parse_attributes
from escalation.models import Agent, CannedReply, Site
from escalation.selectors import start_topics


class TruncatedCharField(forms.CharField):
    """Context the browser fills in, not the visitor (a referrer, a page title): cut to
    max_length rather than refused. Refused, it re-showed the start form with an error on a hidden
    field that nobody could see or fix, and that visitor could never start a chat."""

    def to_python(self, value: Any) -> str:
        text: str = super().to_python(value) or ""
        return text[: self.max_length] if self.max_length is not None else text


class StartChatForm(forms.Form):
    name = forms.CharField(max_length=100, label="Your name")
    email = forms.EmailField(required=False, label="E-mail (optional)")
    topic = forms.ChoiceField(label="Topic")
    message = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="How can we help?")
    page = TruncatedCharField(required=False, max_length=500, widget=forms.HiddenInput)
    # From the widget, about the company's page it runs on: the page's title, its referrer, and
    # the custom attributes the page set (JSON; checked by widget.js before it is sent).
    title = TruncatedCharField(required=False, max_length=300, widget=forms.HiddenInput)
    referrer = TruncatedCharField(required=False, max_length=500, widget=forms.HiddenInput)
    attributes = forms.CharField(required=False, max_length=16_384, widget=forms.HiddenInput)

    def __init__(self, *args: Any, site: Site | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        topics = list(start_topics(site=site))
        topic_field = cast(forms.ChoiceField, self.fields["topic"])
        topic_field.choices = [("", "Choose a topic…")] + [(t.name, t.name) for t in topics]
        if site is not None and len(topics) == 1:  # the widget's one topic: nothing to ask
            topic_field.initial = topics[0].name
            topic_field.widget = forms.HiddenInput()
        self.fields["message"].validators.append(MaxLengthValidator(settings.MESSAGE_MAX_CHARS))

    def clean_attributes(self) -> Attributes:
        text: str = self.cleaned_data["attributes"]
        if not text:
            return {}
        try:
            return parse_attributes(json.loads(text))
        except (ValueError, RecursionError):
            raise forms.ValidationError(
                "The page's custom attributes are not valid JSON."
            ) from None
        except AttributesError as exc:
            raise forms.ValidationError(f"The page's custom attributes: {exc}") from None

    def clean(self) -> dict[str, Any]:
        # A hidden field's error shows nowhere: say it above the form (only a page that went
        # around widget.js's own checks can get here).
        cleaned = super().clean() or {}
        hidden_errors = self.errors.pop("attributes", None)
        if hidden_errors:
            self.add_error(None, list(hidden_errors))
        return cleaned

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Please tell us your name.")
        return name


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
