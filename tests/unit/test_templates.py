"""Bounded rendering changes nothing for the templates agents actually write."""

from __future__ import annotations

import threading

import pytest
from jinja2.sandbox import SandboxedEnvironment

from agentdesk.demo import content
from agentdesk.domain import templates

VALUES = {
    "customer_name": "Greta Lindqvist",
    "customer_first_name": "Greta",
    "agent_name": "Dana Support",
    "agent_signature": "Dana, Northwind Bikes",
    "ref": "AD-1042",
    "subject": "Battery drains overnight",
    "channel": "email",
    "due": "Tuesday 17 November, 13:30",
}


def plain_jinja(source: str, values: dict[str, str]) -> str:
    return SandboxedEnvironment(keep_trailing_newline=True).from_string(source).render(**values)


@pytest.mark.parametrize("name", sorted(content.TEMPLATES))
def test_the_demo_templates_render_as_plain_jinja_renders_them(name):
    meta, body = content.TEMPLATES[name]
    template = templates.parse_template(name, f"---\n{meta}\n---\n{body}")
    rendered = templates.render(template, VALUES)
    assert rendered.text == plain_jinja(template.body, VALUES)
    assert rendered.undefined == ()


@pytest.mark.parametrize(
    "source",
    [
        "{% if channel == 'email' %}Hi {{ customer_first_name }},{% else %}Hi!{% endif %}\n",
        "{% for word in subject.split() %}{{ loop.index }}. {{ word|upper }}{{ ', ' if not loop.last }}{% endfor %}",
        "{% macro sign(name) %}-- {{ name|title }}{% endmacro %}{{ sign(agent_name) }}\n{{ sign('x') }}",
        "{% set greeting = 'Hello' %}{{ greeting ~ ' ' ~ customer_first_name }}! {{ '%s (%d)' % (ref, 3) }}",
        "{{ '{} / {:>8}'.format(ref, channel) }} {{ subject|truncate(12) }} {{ subject|wordwrap(10) }}",
        "{{ subject|center(40) }}|{{ [ref, channel]|join(', ') }}|{{ range(3)|list }}|{{ customer_name|replace('a', 'o') }}",
        "{% set ns = namespace(n=0) %}{% for c in customer_name %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}",
        "{% filter upper %}{{ due }}{% endfilter %} {{ ('ab' * 3)[::-1] }} {{ 2 ** 10 }} {{ [1, 2] + [3] }}",
        "{% for i in range(3) recursive %}{{ i }}{% endfor %} {{ {'a': [1, 2]} }} {{ cycler('a', 'b').next() }}",
    ],
)
def test_ordinary_template_features_render_as_plain_jinja_renders_them(source):
    assert templates.render(source, VALUES).text == plain_jinja(source, VALUES)


def test_missing_values_are_marked_and_listed():
    rendered = templates.render(
        "Hi {{ customer_first_name }}, {{ tracking }} {{ tracking }}", {"customer_first_name": ""}
    )
    assert rendered.text == "Hi [[customer_first_name?]], [[tracking?]] [[tracking?]]"
    assert rendered.undefined == ("customer_first_name", "tracking")


def test_each_rendering_has_its_own_budget():
    # A slow template in one thread does not use up another rendering's time or size.
    results: list[object] = []

    def slow():
        try:
            templates.render(
                "{% macro f(n) %}{% if n < 60 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}{% endmacro %}{{ f(0) }}", {}
            )
        except templates.TemplateFailed as error:
            results.append(error)

    worker = threading.Thread(target=slow)
    worker.start()
    for _ in range(50):
        assert templates.render("{{ 'x' * 900000 }}", {}).text == "x" * 900000
    worker.join()
    assert "longer than" in str(results[0])


def test_time_a_rendering_waits_for_a_core_does_not_count_against_it(monkeypatch):
    # On a loaded host the clock runs on while the rendering thread waits its turn: seen as a
    # receipt failing on a 2-core machine at load 13. The clock here jumps 5 s at every look.
    from agentdesk.domain.templates import rendering

    moments = iter(range(0, 10_000, 5))
    monkeypatch.setattr(rendering.time, "monotonic", lambda: float(next(moments)))
    body = "{% for n in range(300) %}{{ n }}{% endfor %}"
    assert templates.render(body, {}).text == "".join(str(n) for n in range(300))


def test_template_failed_is_the_invalid_input_the_front_ends_print():
    from agentdesk.errors import InvalidInput

    with pytest.raises(InvalidInput) as failure:
        templates.render(templates.Template(name="receipt", body="Hi\n{{ customer_first_name }\n"), {})
    assert isinstance(failure.value, templates.TemplateFailed)
    assert str(failure.value) == "template 'receipt', line 2: syntax error: unexpected '}'"
    assert (failure.value.template_name, failure.value.line) == ("receipt", 2)
