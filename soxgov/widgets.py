"""Form widgets for pages every reviewer requests many times an hour."""

from django import forms
from django.forms.utils import flatatt
from django.utils.html import format_html, format_html_join


class PlainSelect(forms.Select):
    """A single <select> rendered in Python rather than through a template per option.

    The same HTML as forms.Select for flat choices; the template renderer made the four selects of the review
    queue's filter form a third of the page's rendering (bench/page_cost.py). Grouped choices fall back to it.
    """

    def render(self, name, value, attrs=None, renderer=None):
        choices = list(iter(self.choices))  # not list(choices): its length hint would COUNT a model's rows
        if any(isinstance(label, list | tuple) for _, label in choices):
            return super().render(name, value, attrs, renderer)
        final = self.build_attrs(self.attrs, attrs)
        final["name"] = name
        selected = {str(v) for v in self.format_value(value)}
        options = format_html_join(
            "",
            '<option value="{}"{}>{}</option>',
            (
                (
                    "" if v is None else v,
                    " selected" if str("" if v is None else v) in selected else "",
                    label,
                )
                for v, label in choices
            ),
        )
        return format_html("<select{}>{}</select>", flatatt(final), options)


def plain_selects(form_class):
    """Give a form class's single selects the PlainSelect widget (same attributes and choices)."""
    for field in form_class.base_fields.values():
        if type(field.widget) is forms.Select:
            widget = PlainSelect(attrs=field.widget.attrs)
            widget.choices = field.widget.choices
            widget.is_required = field.widget.is_required
            field.widget = widget
    return form_class
