from datetime import date, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from chat.models import ChatSession
from escalation.models import Agent, AgentGroup, Pipeline, Tag, Tier
from reporting.search import ChatSearch
from reporting.selectors import ReportFilter

MAX_RANGE_DAYS = 400


class ReportFilterForm(forms.Form):
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    tier = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    group = forms.ModelChoiceField(
        AgentGroup.objects.all(), required=False, empty_label="All groups"
    )
    agent = forms.ModelChoiceField(Agent.objects.all(), required=False, empty_label="All agents")
    pipeline = forms.ModelChoiceField(
        Pipeline.objects.all(), required=False, empty_label="All pipelines"
    )
    tag = forms.ModelChoiceField(Tag.objects.all(), required=False, empty_label="All tags")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tier_field = self.fields["tier"]
        assert isinstance(tier_field, forms.TypedChoiceField)  # noqa: S101 - narrowing for mypy
        tier_field.choices = [(t.level, str(t)) for t in Tier.objects.order_by("level")] or [
            (1, "Tier 1")
        ]

    @staticmethod
    def defaults() -> dict[str, Any]:
        today = timezone.localdate()
        return {
            "start": (today - timedelta(days=29)).isoformat(),
            "end": today.isoformat(),
            "tier": 1,
        }

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        today = timezone.localdate()
        end: date = cleaned.get("end") or today
        start: date = cleaned.get("start") or end - timedelta(days=29)
        if start > end:
            raise forms.ValidationError("The start date is after the end date.")
        if start.year < 2000 or end.year > 2999:
            raise forms.ValidationError("Choose dates between the years 2000 and 2999.")
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            raise forms.ValidationError(f"Choose a period of at most {MAX_RANGE_DAYS} days.")
        cleaned["start"], cleaned["end"] = start, end
        return cleaned

    def to_filter(self) -> ReportFilter:
        data = self.cleaned_data
        return ReportFilter(
            start=data["start"],
            end=data["end"],
            tier_level=data.get("tier") or 1,
            group_id=data["group"].pk if data.get("group") else None,
            agent_id=data["agent"].pk if data.get("agent") else None,
            pipeline_id=data["pipeline"].pk if data.get("pipeline") else None,
            tag_id=data["tag"].pk if data.get("tag") else None,
        )


class ChatSearchForm(forms.Form):
    """The search page's form: every field optional, at least one given."""

    q = forms.CharField(
        required=False,
        max_length=200,
        label="Words",
        help_text='From messages and internal notes; "quoted phrase", -without, or.',
    )
    visitor = forms.CharField(required=False, max_length=100, label="Visitor name or e-mail")
    agent = forms.ModelChoiceField(Agent.objects.all(), required=False, empty_label="Any agent")
    tier = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="Tier")
    tag = forms.ModelChoiceField(Tag.objects.all(), required=False, empty_label="Any tag")
    status = forms.ChoiceField(required=False, label="Outcome")
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    page = forms.IntegerField(
        required=False, min_value=1, max_value=10_000, widget=forms.HiddenInput
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tier = self.fields["tier"]
        assert isinstance(tier, forms.TypedChoiceField)  # noqa: S101 - narrowing for mypy
        tier.choices = [("", "Any tier")] + [(t.level, str(t)) for t in Tier.objects.all()]
        status = self.fields["status"]
        assert isinstance(status, forms.ChoiceField)  # noqa: S101 - narrowing for mypy
        status.choices = [("", "Any outcome"), *ChatSession.Status.choices]

    def clean_q(self) -> str:
        words: str = self.cleaned_data["q"].strip()
        return words

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and start > end:
            raise forms.ValidationError("The start date is after the end date.")
        return cleaned

    def to_search(self) -> ChatSearch:
        data = self.cleaned_data
        return ChatSearch(
            words=data["q"],
            visitor=data["visitor"].strip(),
            agent_id=data["agent"].pk if data.get("agent") else None,
            tier_level=data.get("tier"),
            tag_id=data["tag"].pk if data.get("tag") else None,
            status=data.get("status") or "",
            start=data.get("start"),
            end=data.get("end"),
        )
