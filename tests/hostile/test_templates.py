"""Hostile reply templates: each fails fast, within bounded memory, as one clean line.

A template is written by an agent (or pasted from somewhere) and filled with values a customer
controls; it runs in the TUI and in ingest (receipts). Whatever it does, rendering ends within
the deadline, builds no more than the size limits allow, reads no file, and fails as one
`TemplateFailed` naming the template and the line, never a traceback or the rendering's values.
"""

from __future__ import annotations

import resource
import time

import pytest

from agentdesk.domain import templates
from agentdesk.errors import AgentdeskError, InvalidInput

# The deadline is 1 s of the rendering thread's CPU; whatever a template does must end well inside
# this. Measured as that thread's CPU too: on a loaded host the clock also counts time the thread
# waited for a core, which no template makes.
SECONDS = 2.0
GROWTH_MB = 200  # peak RSS may not grow by more than this over the whole suite

NESTED_LISTS = "".join(f"{{% set l{n + 1} = [{', '.join([f'l{n}'] * 10)}] %}}" for n in range(8))

HOSTILE = {
    # operators: the result's size is checked before it is built
    "string multiplication": "{{ 'x' * 10**9 }}",
    "string multiplication, count first": "{{ 10**9 * 'x' }}",
    "list multiplication": "{{ [0] * 10**9 }}",
    "tuple multiplication": "{{ (1, 2) * 10**9 }}",
    "power": "{{ 7 ** (10 ** 7) }}",
    "power of a power": "{{ (10 ** 1000) ** 1000 }}",
    "big int products": "{% set n = 10**5000 %}{{ n * n * n * n * n }}",
    "float overflow": "{{ 10.0 ** 1000 }}",
    "string addition": "{% set s = 'x' * 900000 %}{{ s + s }}",
    "list addition": "{% set l = [0] * 900000 %}{{ (l + l)|length }}",
    "concatenation doubling": "{% set s = 'x' * 1000 %}" + "{% set s = s ~ s %}" * 30 + "{{ s|length }}",
    "concatenation in a loop": "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s|length }}",
    # ranges and loops
    "huge range": "{{ range(10**9)|list }}",
    "huge range with a step": "{% for i in range(0, 10**12, 3) %}{% endfor %}",
    "nested ranges": "{% for i in range(10000) %}{% for j in range(10000) %}{{ '' }}{% endfor %}{% endfor %}",
    "nested literal loops": "{% set l = [0,1,2,3,4,5,6,7,8,9] %}" + "{% for a in l %}" * 9 + "{% endfor %}" * 9,
    "loop over a huge string": "{% for c in 'x' * 900000 %}{% for d in 'xy' %}{% endfor %}{% endfor %}",
    # recursion
    "macro recursion": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "exponential macro calls": "{% macro f(n) %}{% if n < 60 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}"
    "{% endmacro %}{{ f(0) }}",
    "recursion via caller": "{% macro m() %}{% call m() %}{{ caller() }}{% endcall %}{% endmacro %}{{ m() }}",
    "caller in a loop": "{% macro m() %}{% for i in range(10000) %}{{ caller() }}{% endfor %}{% endmacro %}"
    "{% call m() %}{% call m() %}{{ 'x' * 100 }}{% endcall %}{% endcall %}",
    "recursive loop": "{% for i in [1, 2, 3] recursive %}{{ loop([1, 2, 3]) }}{% endfor %}",
    "recursive loop, wide": "{% for i in range(10) recursive %}{{ loop(range(10)) }}{% endfor %}",
    "block recursion": "{% block b %}{{ self.b() }}{% endblock %}",
    "macro output built in a loop": "{% macro m() %}{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}"
    "{% endmacro %}{{ m() }}",
    "set block built in a loop": "{% set x %}{% for i in range(10000) %}{{ 'y' * 1000 }}{% endfor %}{% endset %}",
    # formatting with huge widths
    "percent width": "{{ '%999999999s' % 'x' }}",
    "percent precision": "{{ '%.999999999f' % 1.5 }}",
    "percent star width": "{{ '%*s' % (10**9, 'x') }}",
    "percent with many fields": "{{ ('%999999s' * 1000) % ((1,) * 1000) }}",
    "format method width": "{{ '{:>999999999}'.format('x') }}",
    "format method nested width": "{{ '{:{}}'.format('x', 10**9) }}",
    "format method precision": "{{ '{:.999999999f}'.format(1.5) }}",
    "format map width": "{{ '{a:^999999999}'.format_map({'a': 1}) }}",
    "format filter": "{{ '%999999999d'|format(1) }}",
    "format filter of a big value": "{{ '%s%s'|format('x' * 900000, 'y' * 900000) }}",
    # filters and methods with huge widths or counts
    "center": "{{ 'x'|center(10**9) }}",
    "center method": "{{ 'x'.center(10**9) }}",
    "ljust method": "{{ 'x'.ljust(10**9) }}",
    "zfill method": "{{ '1'.zfill(10**9) }}",
    "expandtabs": "{{ ('\t' * 1000).expandtabs(10**6) }}",
    "indent": "{{ ('x\n' * 1000)|indent(10**6) }}",
    "indent with a string": "{{ ('x\n' * 1000)|indent('y' * 10**6) }}",
    "wordwrap": "{{ ('x ' * 100000)|wordwrap(1, wrapstring='y' * 1000) }}",
    "join of a huge range": "{{ range(10**9)|join(',') }}",
    "join with a huge separator": "{{ range(10000)|join('x' * 10**5) }}",
    "join method": "{{ ('x' * 10**5).join(range(10000)|map('string')) }}",
    "join of centred items": "{{ range(10000)|map('center', 999999)|join }}",
    "list of centred items": "{{ range(10000)|map('center', 999999)|list|length }}",
    "replace": "{{ ('x' * 10**5)|replace('x', 'y' * 10**4) }}",
    "replace method": "{{ ('x' * 10**5).replace('x', 'y' * 10**4) }}",
    "replace empty": "{{ ('x' * 10**5)|replace('', 'y' * 100) }}",
    "translate": "{{ ('x' * 10**5).translate({120: 'y' * 10**4}) }}",
    "batch fill": "{{ range(10)|batch(10**9, 'x')|list }}",
    "slice": "{{ range(10)|slice(10**9)|list }}",
    "sum of lists": "{{ ([[0] * 1000] * 2000)|sum(start=[])|length }}",
    "urlencode chain": "{{ ('é' * 10**5)" + "|urlencode" * 12 + " }}",
    "tojson of shared lists": "{% set l0 = ['xxxxxxxxxx'] %}" + NESTED_LISTS + "{{ l8|tojson }}",
    "printing shared lists": "{% set l0 = ['xxxxxxxxxx'] %}" + NESTED_LISTS + "{{ l8 }}",
    "string of shared lists": "{% set l0 = ['xxxxxxxxxx'] %}" + NESTED_LISTS + "{{ l8|string|length }}",
    "concatenating shared lists": "{% set l0 = ['xxxxxxxxxx'] %}" + NESTED_LISTS + "{{ (l8 ~ '')|length }}",
    "pprint of shared lists": "{% set l0 = ['xxxxxxxxxx'] %}" + NESTED_LISTS + "{{ l8|pprint }}",
    "output too long": "{% for i in range(10000) %}{{ 'x' * 999 }}{% endfor %}",
    "lipsum": "{{ lipsum(10**9) }}",
    # the sandbox: Python's internals stay out of reach
    "class attribute": "{{ ''.__class__ }}",
    "subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "globals via cycler": "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "globals via joiner": "{{ joiner.__init__.__globals__ }}",
    "namespace internals": "{{ namespace.__init__.__globals__ }}",
    "attr filter": "{{ ''|attr('__class__') }}",
    "format method internals": "{{ '{0.__class__.__mro__}'.format('') }}",
    "template reference": "{{ self._TemplateReference__context }}",
    "list mutation": "{% set l = [] %}{{ l.append(1) }}",
    "dict mutation": "{% set d = {} %}{{ d.update(a=1) }}",
    "cycler abuse": "{% set c = cycler(*range(10000)) %}{% for i in range(10000) %}{% for j in range(100) %}"
    "{{ c.next() }}{% endfor %}{% endfor %}",
    "joiner abuse": "{% set j = joiner('x' * 10**6) %}{% for i in range(100) %}{{ j() }}{% endfor %}",
    "namespace abuse": "{% set ns = namespace(l=['x' * 1000]) %}{% for i in range(30) %}{% set ns.l = ns.l + ns.l %}"
    "{% endfor %}{{ ns.l|length }}",
    # files: no loader, so nothing reaches the filesystem
    "include": "Hi\n{% include '/etc/passwd' %}",
    "import": "{% import '/etc/passwd' as p %}",
    "from import": "{% from 'macros.html' import x %}",
    "extends": "{% extends '../../etc/passwd' %}",
    "include of a variable": "{% include customer_name %}",
    # plain mistakes
    "syntax error": "Hi {{ customer_first_name }\n",
    "unclosed block": "{% for x in range(3) %}\n{{ x }}",
    "unknown filter": "{{ 'x'|no_such_filter }}",
    "unknown tag": "{% do something %}",
    "attribute of an undefined": "{{ nothing.here }}",
    "division by zero": "{{ 1 / 0 }}",
    "type error": "{{ customer_name + 1 }}",
    "int of a huge string": "{{ ('9' * 10**5)|int + 10**5000 * 10**5000 }}",
}


@pytest.fixture(scope="module")
def peak_memory():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    yield
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < GROWTH_MB, f"peak RSS grew by {grown_mb:.0f} MB over the hostile templates"


@pytest.mark.parametrize("source", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_template_fails_fast_as_one_clean_line(source, peak_memory):
    template = templates.Template(name="hostile", body=source)
    started = time.thread_time()
    with pytest.raises(templates.TemplateFailed) as failure:
        templates.render(template, {"customer_name": "Greta Secret-Value", "customer_first_name": "Greta"})
    elapsed = time.thread_time() - started
    assert elapsed < SECONDS, f"took {elapsed:.2f} s"
    message = str(failure.value)
    assert message.startswith("template 'hostile'")
    assert "\n" not in message and len(message) < 300
    assert "Traceback" not in message and "Secret-Value" not in message
    assert isinstance(failure.value, InvalidInput) and isinstance(failure.value, AgentdeskError)
    # No traceback or context travels with it: nothing holding the rendering's locals is printed.
    assert failure.value.__cause__ is None and failure.value.__suppress_context__


@pytest.mark.parametrize("tag", ["include", "import", "extends"])
def test_reading_files_is_refused_by_name_with_its_line(tag):
    source = {
        "include": "one\ntwo\n{% include 'x.md' %}",
        "import": "one\ntwo\n{% import 'x.md' as x %}",
        "extends": "one\ntwo\n{% extends 'x.md' %}",
    }[tag]
    with pytest.raises(templates.TemplateFailed, match=rf"line 3: .*{tag}.*cannot read other templates or files"):
        templates.render(templates.Template(name="t", body=source), {})


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("Hi\n\n{{ 'x' * 10**9 }}\n", 3),
        ("Hi\n{% macro m() %}\n\n{{ range(10**9)|list }}\n{% endmacro %}\n\n{{ m() }}", 4),
        ("a\nb\nc\nd\n{% if %}", 5),
        (
            "a\n{% for i in range(10) %}\n{% for j in range(10**4) %}\n{% for k in range(10**4) %}{% endfor %}"
            + "{% endfor %}{% endfor %}",
            4,
        ),
    ],
)
def test_the_error_names_the_line(source, line):
    with pytest.raises(templates.TemplateFailed) as failure:
        templates.render(templates.Template(name="lines", body=source), {})
    assert failure.value.line == line
    assert str(failure.value).startswith(f"template 'lines', line {line}: ")


def test_a_too_long_template_is_refused_before_it_is_parsed():
    with pytest.raises(templates.TemplateFailed, match="characters long"):
        templates.render(templates.Template(name="long", body="x" * 10**6), {})


def test_control_characters_in_an_error_do_not_reach_the_terminal():
    with pytest.raises(templates.TemplateFailed) as failure:
        templates.render("{{ {}['\x1b]52;c;ZXZpbA==\x07'].x }}", {})
    assert "\x1b" not in str(failure.value) and "\x07" not in str(failure.value)


def test_values_of_every_size_a_reply_needs_still_render():
    source = (
        "{% for i in range(200) %}{{ '%-10s|' % i }}{{ '{:>8}'.format(i) }}{{ 'x'|center(40) }}"
        "{% endfor %}{{ range(1000)|join(', ') }}{{ 'y' * 100000 }}"
    )
    text = templates.render(source, {}).text
    assert 100_000 < len(text) < templates.rendering.MAX_SIZE
