"""The review queue's cheaper rendering gives the same HTML and links as Django's own (soxgov/widgets.py,
soxgov/links.py)."""

import re

import pytest
from django import forms
from django.urls import reverse, set_script_prefix

from soxgov.links import object_path
from soxgov.widgets import PlainSelect, plain_selects


def _normalised(html: str) -> str:
    """Whitespace between tags and the order of a tag's attributes do not matter to a browser."""
    html = re.sub(r">\s+<", "><", html.strip())

    def tag(match):
        attributes = sorted(re.findall(r' [^ =>]+(?:="[^"]*")?', match[2]))
        return f"<{match[1]}{''.join(attributes)}>"

    return re.sub(r"<(\w+)([^>]*)>", tag, html)


CHOICES = [("", "Any"), ("a", "Alpha & <b>"), (3, "Three"), ('x"y', "Quote")]


@pytest.mark.parametrize("value", [None, "", "a", "3", 3, 'x"y', "missing"])
def test_plain_select_renders_what_select_renders(value):
    django_select = forms.Select(attrs={"class": "filter", "aria-label": "Pick"}, choices=CHOICES)
    plain = PlainSelect(attrs={"class": "filter", "aria-label": "Pick"}, choices=CHOICES)
    expected = django_select.render("pick", value, attrs={"id": "id_pick"})
    got = plain.render("pick", value, attrs={"id": "id_pick"})
    assert _normalised(got) == _normalised(expected)
    assert "&lt;b&gt;" in got and "<b>" not in got  # labels are escaped


def test_plain_select_falls_back_for_grouped_choices():
    grouped = [("Fruit", [("apple", "Apple"), ("pear", "Pear")]), ("none", "None")]
    got = PlainSelect(choices=grouped).render("f", "pear")
    assert "<optgroup" in got and 'value="pear" selected' in got


def test_plain_selects_keeps_model_choices_lazy_and_bound(django_user_model):
    from entitlements.models import Application

    Application.objects.create(name="Ledger")

    class Form(forms.Form):
        app = forms.ModelChoiceField(queryset=Application.objects.order_by("name"), required=False)
        many = forms.MultipleChoiceField(choices=[("1", "one")], required=False)

    plain_selects(Form)
    assert type(Form.base_fields["app"].widget) is PlainSelect
    assert type(Form.base_fields["many"].widget) is forms.SelectMultiple  # multiple selects are left alone
    Application.objects.create(name="Payroll")  # created after the form class: still listed
    form = Form({"app": str(Application.objects.get(name="Payroll").pk)})
    html = str(form["app"])
    assert ">Ledger</option>" in html and ">Payroll</option>" in html
    assert re.search(r'value="\d+" selected>Payroll<', html)


@pytest.mark.parametrize("pk", [1, 42, 2_147_483_647])
def test_object_path_is_reverse(pk):
    assert object_path("reviews:item_detail", pk) == reverse("reviews:item_detail", args=[pk])


def test_object_path_follows_the_script_prefix():
    try:
        set_script_prefix("/soxgov/")
        assert object_path("reviews:item_detail", 7) == "/soxgov/reviews/items/7/"
    finally:
        set_script_prefix("/")
