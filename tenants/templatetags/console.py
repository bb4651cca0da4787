"""Template filters every console page uses: `{{ moment|when }}` is "3 minutes ago" with the exact time on hover."""
from __future__ import annotations

from django import template

from tenants.scoped_admin import when_html

register = template.Library()


@register.filter
def when(value):
    return when_html(value)
