"""Rendering a template within bounds of time and memory, and reporting any failure as one line.

Template text is written by agents and filled with values customers control, and it runs inside
the TUI and inside ingest (automatic receipts), so a template must never be able to hang them,
exhaust their memory, read a file or crash them with a traceback. Jinja2's sandbox keeps a
template away from Python's internals; it does not bound what a template may compute. Here every
place where a template can make work or memory grow is intercepted, and each checks one shared
`Budget` before the work is done:

- calls (macros, `caller`, `loop(...)` of recursive loops, methods) and filters tick a deadline
  of the thread's CPU time; every `for` loop is wrapped so that each step ticks it and counts
  toward a cap on loop steps (a loop that calls nothing still ends);
- `range` is limited to `MAX_RANGE` numbers;
- `*`, `**`, `+` and `%`, `~`, the string methods that pad, join, replace or expand, `str.format`
  and the filters that take a width or a count check the size of their result before computing
  it; every value a call, filter or operator returns counts toward `MAX_PRODUCED`, the characters
  (or items) a rendering may build in all, so no mix of small steps adds up to gigabytes;
- whatever is printed is measured before it is turned into text (a list holding itself ten
  times ten levels deep prints as 10**10 characters) and the output is counted as it streams;
- the environment has no loader, and `{% include %}`, `{% import %}` and `{% extends %}` are
  refused before the template is compiled, naming their line;
- mutating methods of lists, dicts and sets are refused (ImmutableSandboxedEnvironment).

`templates.render` turns every failure, whatever raised it, into one `TemplateFailed` naming the
template and the line (`describe`, `line_of`), with no traceback and no values of the rendering in
it beyond the error's own words.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable
from functools import update_wrapper, wraps
from typing import Any, cast

from jinja2 import TemplateSyntaxError, UndefinedError, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.runtime import LoopContext, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer

MAX_SOURCE = 100_000  # characters of template text
MAX_SIZE = 1_000_000  # characters of any one string (items of any one list), and of the output
MAX_PRODUCED = 20_000_000  # characters and items built by one rendering, all values together
MAX_RANGE = 10_000  # numbers in one range()
MAX_LOOP_STEPS = 100_000  # steps of all loops of one rendering together
MAX_INT_BITS = 65_536  # about 20 000 decimal digits
DEADLINE_SECONDS = 1.0

# The name Jinja2 gives a template made from a string; frames of template code carry it.
_TEMPLATE_FILENAME = "<template>"


class LimitExceeded(Exception):
    """Raised inside a rendering when it would go past one of its bounds."""


class NotAvailable(LimitExceeded):
    """A tag a template may not use, found before the template is compiled."""

    def __init__(self, message: str, lineno: int) -> None:
        super().__init__(message)
        self.lineno = lineno


class Budget:
    """What one rendering may still spend: time, loop steps and characters built."""

    __slots__ = ("deadline", "produced", "seconds", "steps")

    def __init__(self, seconds: float = DEADLINE_SECONDS) -> None:
        self.seconds = seconds
        # The rendering thread's own CPU time, not the clock's: a template can only compute (it
        # reads no file, waits on nothing), and on a loaded machine a thread that waits its turn
        # for a core must not fail a customer's receipt for time it never ran.
        self.deadline = time.thread_time() + seconds
        self.steps = 0
        self.produced = 0

    def tick(self) -> None:
        if time.thread_time() > self.deadline:
            raise LimitExceeded(f"rendering takes longer than {self.seconds:g} s; simplify its loops or macros")

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_LOOP_STEPS:
            raise LimitExceeded(f"its loops run more than {MAX_LOOP_STEPS:,} steps")
        if not self.steps % 256:
            self.tick()

    def produce(self, value: Any) -> Any:
        size = _shallow_size(value)
        if size:
            _refuse_size(size)
            self.produced += size
            if self.produced > MAX_PRODUCED:
                raise LimitExceeded(f"it builds more than {MAX_PRODUCED:,} characters of text in all")
        return value


def _shallow_size(value: Any) -> int:
    if isinstance(value, (str, bytes, bytearray, list, tuple, dict, set, frozenset)):
        return len(value)
    return 0


def _refuse_size(size: int, what: str = "a value") -> None:
    if size > MAX_SIZE:
        raise LimitExceeded(f"{what} would be {size:,} characters long; at most {MAX_SIZE:,} are allowed")


def _refuse_int(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise LimitExceeded(
            f"a number would have about {int(bits * 0.30103):,} digits; the limit is {int(MAX_INT_BITS * 0.30103):,}"
        )


def _text_size(value: Any, budget: Budget, limit: int = MAX_SIZE) -> int:
    """About how long `str(value)` is, without building it; stops counting past `limit`.

    Containers may share their items, so a small structure can print as gigabytes; walking it
    item by item costs at most `limit` steps.
    """
    total, stack, visited = 0, [value], 0
    while stack:
        item = stack.pop()
        if isinstance(item, (str, bytes, bytearray)):
            total += len(item) + 4
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 2 + 2 * len(item)
            if total <= limit:
                stack.extend(item)
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            if total <= limit:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, Namespace):
            total += 13
            stack.append(object.__getattribute__(item, "_Namespace__attrs"))
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 2
        else:
            total += 40
        if total > limit:
            return total
        visited += 1
        if not visited % 4096:
            budget.tick()
    return total


def _refuse_text(value: Any, budget: Budget, what: str = "a value") -> None:
    _refuse_size(_text_size(value, budget), what)


# --- operators ------------------------------------------------------------------------------------

_SEQUENCES = (str, bytes, list, tuple)


def _check_binop(operator: str, left: Any, right: Any, budget: Budget) -> None:
    if operator == "*":
        for sequence, count in ((left, right), (right, left)):
            if isinstance(sequence, _SEQUENCES) and isinstance(count, int):
                _refuse_size(len(sequence) * max(count, 0))
        if isinstance(left, int) and isinstance(right, int):
            _refuse_int(left.bit_length() + right.bit_length())
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            _refuse_int(int(right * math.log2(abs(left))))
    elif operator == "+":
        if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
            _refuse_size(len(left) + len(right))
    elif operator == "%" and isinstance(left, (str, bytes)):
        _check_percent_format(left, right, budget)


# printf-style conversions: %(key)-08.3f and friends.
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")
_FLOAT_DIGITS = 330  # the longest a float prints without a precision (1e308 in %f)


def _check_percent_format(text: str | bytes, values: Any, budget: Budget) -> None:
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    total = len(text)
    for spec in _PERCENT_SPEC.finditer(text):
        width, precision, conversion = spec.groups()
        if "*" in (width, precision):
            raise LimitExceeded("'*' widths in % formatting are not supported; write the width")
        for number in (width, precision):
            if number:
                _refuse_size(int(number) if len(number) < 10 else MAX_SIZE + 1, "a formatted field")
                total += int(number)
        if conversion in "eEfFgG":
            total += _FLOAT_DIGITS
    total += _text_size(values, budget)
    _refuse_size(total, "the formatted text")


# format() spec mini-language: [[fill]align][sign][z][#][0][width][grouping][.precision][type]
_FORMAT_SPEC = re.compile(r"(?:.?[<>=^])?[-+ ]?z?#?0?(\d*)[,_]?(?:\.(\d*))?")


def _check_format_spec(spec: str) -> None:
    found = _FORMAT_SPEC.match(spec)
    for number in found.groups() if found else ():
        if number:
            _refuse_size(int(number) if len(number) < 10 else MAX_SIZE + 1, "a formatted field")


class _BoundedFormatter(SandboxedFormatter):
    """`str.format` in the sandbox, with each field's width checked and the result counted."""

    def __init__(self, environment: BoundedEnvironment) -> None:
        super().__init__(environment)
        self.budget = environment.budget
        self.length = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        self.budget.tick()
        _check_format_spec(format_spec)
        _refuse_text(value, self.budget)
        result = super().format_field(value, format_spec)
        self.length += len(result)
        _refuse_size(self.length, "the formatted text")
        return self.budget.produce(result)


# --- string methods and filters that take a width or a count ------------------------------------


def _lines(text: str) -> int:
    return text.count("\n") + 1


def _materialize(values: Iterable, budget: Budget, separator_length: int = 0) -> list:
    """The items of an iterable (a generator possibly), refused as soon as their text is too long."""
    items, total = [], 0
    for item in values:
        total += _text_size(item, budget) + separator_length
        _refuse_size(total)
        items.append(item)
    return items


def _check_str_method(name: str, text: str | bytes, args: tuple, kwargs: dict, budget: Budget) -> tuple:
    """Refuse a call of a string method whose result would be too big; the args to call it with."""
    if name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
        _refuse_size(args[0])
    elif name == "expandtabs":
        tabsize = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tabsize, int):
            tabs = text.count("\t") if isinstance(text, str) else text.count(b"\t")
            _refuse_size(len(text) + tabs * max(tabsize, 0))
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], type(text)) and isinstance(args[1], type(text)):
        old, new = args[0], args[1]
        count = text.count(old)  # type: ignore[arg-type]  # old is of text's own type (checked above)
        if len(args) > 2 and isinstance(args[2], int) and args[2] >= 0:
            count = min(count, args[2])
        _refuse_size(len(text) + count * max(len(new) - len(old), 0))
    elif name == "join" and args:
        items = _materialize(args[0], budget, len(text))
        args = (items,) + args[1:]
    elif name == "translate" and args and isinstance(args[0], dict):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        _refuse_size(len(text) * max(longest, 1))
    return args


def _filter_checks(budget: Budget) -> dict:
    """Checks run before the filters whose result grows with an argument; each returns the args."""

    def center(value, width=80, *rest):
        if isinstance(width, int):
            _refuse_size(max(len(str(value)), width))
        return (value, width, *rest), {}

    def indent(value, width=4, first=False, blank=False):
        pad = width if isinstance(width, int) else len(str(width))
        _refuse_size(len(str(value)) + _lines(str(value)) * max(pad, 0))
        return (value, width, first, blank), {}

    def wordwrap(value, width=79, break_long_words=True, wrapstring=None, break_on_hyphens=True):
        text = str(value)
        if isinstance(width, int) and width > 0:
            separator = len(wrapstring) if isinstance(wrapstring, str) else 1
            _refuse_size(len(text) + (len(text) // width + _lines(text)) * separator)
        return (value, width, break_long_words, wrapstring, break_on_hyphens), {}

    def join(value, d="", attribute=None):
        items = _materialize(value, budget, len(str(d)))
        return (items, d, attribute), {}

    def replace(value, old, new, count=None):
        text, old, new = str(value), str(old), str(new)
        found = text.count(old)
        if isinstance(count, int) and count >= 0:
            found = min(found, count)
        _refuse_size(len(text) + found * max(len(new) - len(old), 0))
        return (value, old, new, count), {}

    def format(value, *args, **kwargs):
        _check_percent_format(str(value), kwargs or args, budget)
        return (value, *args), kwargs

    def batch(value, linecount, fill_with=None):
        if isinstance(linecount, int):
            _refuse_size(linecount)
        return (value, linecount, fill_with), {}

    def slice(value, slices, fill_with=None):
        if isinstance(slices, int) and slices > MAX_RANGE:
            raise LimitExceeded(f"slice({slices:,}) makes too many slices; at most {MAX_RANGE:,}")
        return (value, slices, fill_with), {}

    return {
        "center": center,
        "indent": indent,
        "wordwrap": wordwrap,
        "join": join,
        "replace": replace,
        "format": format,
        "batch": batch,
        "slice": slice,
    }


def _bounded_sum(budget: Budget, original):
    """`sum` that adds lists by extending one, not by copying the total once per item."""

    @wraps(original)
    def sum_filter(environment, iterable, attribute=None, start=0):
        if not isinstance(start, (list, tuple)):
            return original(environment, iterable, attribute, start)
        if attribute is not None:
            from jinja2.filters import make_attrgetter

            iterable = map(make_attrgetter(environment, attribute), iterable)
        total = list(start)
        for item in iterable:
            budget.tick()
            _refuse_size(len(total) + len(item))
            total.extend(item)
        return type(start)(total)

    return sum_filter


# --- the environment ------------------------------------------------------------------------------


class _Steps:
    """An iterable that ticks the budget at every step: what every `for` loop iterates."""

    __slots__ = ("_budget", "_iterable")

    def __init__(self, iterable: Any, budget: Budget) -> None:
        self._iterable = iterable
        self._budget = budget

    def __iter__(self):
        step = self._budget.step
        for item in self._iterable:
            step()
            yield item

    def __len__(self) -> int:
        return len(self._iterable)  # a TypeError makes LoopContext count the steps instead


class _Guard(NodeTransformer):
    """Rewrites a parsed template so that loops and `~` go through the environment's checks."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        node = cast(nodes.For, self.generic_visit(node))  # the same node, its children visited
        node.iter = _environment_call("guard_loop", [cast(nodes.Expr, node.iter)], node.iter)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        node = cast(nodes.Concat, self.generic_visit(node))
        return _environment_call("join_values", list(node.nodes), node)


def _environment_call(name: str, args: list[nodes.Expr], at: nodes.Node) -> nodes.Call:
    call = nodes.Call(nodes.EnvironmentAttribute(name), args, [], None, None)
    call.set_lineno(at.lineno)
    call.set_environment(at.environment)  # type: ignore[arg-type]  # set on every parsed node
    return call


_REFUSED_TAGS = (
    (nodes.Extends, "extends"),
    (nodes.Include, "include"),
    (nodes.Import, "import"),
    (nodes.FromImport, "from … import"),
)


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, *, undefined: type[Undefined], budget: Budget) -> None:
        self.budget = budget
        super().__init__(
            undefined=undefined,
            autoescape=False,
            keep_trailing_newline=True,
            loader=None,
            optimized=False,
            finalize=self._finalize,
        )
        self.globals["range"] = self.bounded_range
        self.globals.pop("lipsum", None)  # lorem ipsum of any length: a placeholder generator, not reply text
        checks = _filter_checks(budget)
        filters = dict(self.filters)
        filters["sum"] = _bounded_sum(budget, filters["sum"])
        self.filters = {name: self._guard_filter(function, checks.get(name)) for name, function in filters.items()}
        self.concat = self._concat  # type: ignore[method-assign]  # compiled templates join through it

    # What compiled template code calls -------------------------------------------------------

    def bounded_range(self, *args: int) -> range:
        numbers = range(*args)
        if len(numbers) > MAX_RANGE:
            raise LimitExceeded(f"range() of {len(numbers):,} numbers; at most {MAX_RANGE:,} are allowed")
        return numbers

    def guard_loop(self, iterable: Any) -> _Steps:
        return _Steps(iterable, self.budget)

    def join_values(self, *values: Any) -> str:
        """The `~` operator: its operands as text, measured before they are joined."""
        total = 0
        for value in values:
            total += _text_size(value, self.budget)
            _refuse_size(total)
        return self.budget.produce("".join(map(str, values)))

    def _concat(self, parts: Iterable[str]) -> str:
        """The text of a macro, call block or `{% set %}` block, measured before it is joined."""
        parts = list(parts)
        _refuse_size(sum(map(len, parts)))
        return self.budget.produce("".join(parts))

    def _finalize(self, value: Any) -> Any:
        if not isinstance(value, str):
            _refuse_text(value, self.budget)
        return value

    # Sandbox hooks ---------------------------------------------------------------------------

    def call(self, context, obj, /, *args, **kwargs):
        self.budget.tick()
        if isinstance(obj, LoopContext) and args:
            args = (self.guard_loop(args[0]),) + args[1:]
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, (str, bytes)) and not isinstance(obj, type):
            args = _check_str_method(getattr(obj, "__name__", ""), owner, args, kwargs, self.budget)
        return self.budget.produce(super().call(context, obj, *args, **kwargs))

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right, self.budget)
        return self.budget.produce(super().call_binop(context, operator, left, right))

    def getitem(self, obj: Any, argument: Any) -> Any:
        value = super().getitem(obj, argument)
        return self.budget.produce(value) if isinstance(argument, slice) else value

    def wrap_str_format(self, value: Any):
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        text, is_format_map = value.__self__, value.__name__ == "format_map"

        def bounded_format(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                mapping = args[0]
                args, kwargs = (), mapping
            _refuse_size(len(text), "the format string")
            return str(_BoundedFormatter(self).vformat(text, args, kwargs))

        return update_wrapper(bounded_format, value)

    def _guard_filter(self, function, check):
        budget = self.budget
        # Filters that Jinja2 passes the context or environment to take it first.
        skip = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0

        @wraps(function)
        def guarded(*args, **kwargs):
            budget.tick()
            leading, args = args[:skip], args[skip:]
            if check is not None:
                args, kwargs = check(*args, **kwargs)
            for value in (*args, *kwargs.values()):
                if not isinstance(value, (str, int, float)):
                    _refuse_text(value, budget)
            return budget.produce(function(*leading, *args, **kwargs))

        return guarded

    # Compiling -------------------------------------------------------------------------------

    def compile_checked(self, source: str):
        """Parse, refuse what may reach files, add the loop and `~` checks, compile."""
        tree = self.parse(source)
        for kind, tag in _REFUSED_TAGS:
            for found in tree.find_all(kind):
                raise NotAvailable(
                    f"{{% {tag} %}} is not available: a template cannot read other templates or files", found.lineno
                )
        return self.from_string(_Guard().visit(tree))


# --- errors ---------------------------------------------------------------------------------------

_SPACE = re.compile(r"\s+")
_MAX_PROBLEM = 200


def describe(error: BaseException) -> str:
    """What went wrong, in words for an agent: one line, no values beyond the error's own."""
    if isinstance(error, LimitExceeded):
        problem = str(error)
    elif isinstance(error, TemplateSyntaxError):
        problem = f"syntax error: {error.message}"
    elif isinstance(error, SecurityError):
        problem = f"not allowed in a template: {error}"
    elif isinstance(error, UndefinedError):
        problem = str(error)
    elif isinstance(error, RecursionError):
        problem = "a macro or loop calls itself too deeply"
    elif isinstance(error, MemoryError):
        problem = "needs more memory than a template may use"
    elif isinstance(error, OverflowError):
        problem = "a number is too large"
    elif isinstance(error, TemplateError):
        problem = str(error.message or type(error).__name__)
    else:
        problem = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    from agentdesk.sanitize import strip_control

    problem = _SPACE.sub(" ", strip_control(problem)).strip()
    return problem if len(problem) <= _MAX_PROBLEM else problem[: _MAX_PROBLEM - 1] + "…"


def line_of(error: BaseException) -> int | None:
    """The template line an error was raised at: the innermost frame of template code."""
    if isinstance(error, (TemplateSyntaxError, NotAvailable)):
        return error.lineno
    line, trace = None, error.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == _TEMPLATE_FILENAME:
            line = trace.tb_lineno
        trace = trace.tb_next
    return line


__all__ = [
    "DEADLINE_SECONDS",
    "MAX_RANGE",
    "MAX_SIZE",
    "MAX_SOURCE",
    "BoundedEnvironment",
    "Budget",
    "LimitExceeded",
    "describe",
    "line_of",
]
