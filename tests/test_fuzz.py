"""Fuzzing the real CLI with whole classes of hostile input, generated rather than picked by hand.

Each class is generated, not listed (tests/test_hostile.py keeps one hand-written regression for each):

1. integers of every size (unbounded, 0 and +-1, around +-2**63, thousands of digits as text, written
   oddly: signs, zeros, underscores, other digit systems), in SIZE, every option value and every
   numeric field of a stack file, in every form YAML 1.1 gives an integer (hex, binary, octal, base 60);
2. floats of every kind (nan, +-inf, -0.0, 1e308, 5e-324, any finite value), in every float field of a
   stack file, written as ``.nan``/``.inf``/``-.inf`` and as plain literals;
3. Unicode text with control characters (C0, C1, ESC sequences, U+2028, U+202E, lone surrogates where
   they can arrive, quotes, backslashes, ``\"\"\"``, ``|``) in every string field of a stack file, in
   ``draw --title``, in file names and in every command-line value;
4. odd streams and encodings, in real processes: standard input closed or not UTF-8, standard output
   closed, full (/dev/full) or a pipe closed before or while writing, PYTHONIOENCODING latin-1, cp1252 and
   ascii, junk in COLUMNS, SIGINT and SIGTERM in the middle of the work;
5. every kind of output target for ``draw -o``: new path, existing file, symlinks to a file, to nothing
   and to a directory, a directory, a FIFO, /dev/null, a Unix socket, a missing folder, ``''`` and ``-``.

The property, for every case: no traceback, no hang (a watchdog of HANG seconds a case, or a subprocess timeout),
exit code 0, 1 or 2 (130, 141 or 143 only where a signal or a closed pipe is the case, as
docs/exit-codes.md says), and on failure exactly one ``Error:`` line that says what is wrong (no leaked
Python exception). No output, standard output or error, holds a character that steers a terminal. With
exit 0 the output parses in the form asked for: JSON, CSV and Markdown rows as wide as their header,
``-q`` sizes, SVG as well-formed XML in UTF-8, and ``--emit torch`` as Python whose identifiers are all
convcalc's own. ``pytest --hypothesis-show-statistics`` shows the mix of classes each test drew.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import io
import json
import math
import os
import re
import shlex
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import tokenize
import traceback
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, Phase, assume, event, given, note, settings
from hypothesis import strategies as st

from convcalc.catalog import LAYERS
from convcalc.cli import main
from convcalc.schema import REQUIRED, Arg, Type
from tests.profiles import scaled

CASES = {
    # in process, through click's runner: 10,000 cases a run
    "arguments": 2900,  # command lines for every command: every SIZE and option value
    "stack_numbers": 2400,  # stack files with hostile integers and floats in their numeric fields
    "stack_strings": 1800,  # stack files with hostile text in their string fields
    "emit_and_draw": 700,  # runnable stacks with hostile names and file names: --emit torch, draw, tables
    "junk": 1700,  # bytes, text, YAML soup, mutated examples, deep nesting, alias bombs
    "output_targets": 500,  # draw -o into every kind of file
    # real processes, each with a timeout: a few dozen a run
    "streams": 1,  # per stream case and command: 2 x 4 with odd input, 4 x 4 with odd output
    "encodings": 2,  # per output encoding and form: 3 x 4
    "signals": 3,  # per signal
}

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted(str(path) for path in (ROOT / "examples").glob("*.yaml"))
QUICK_EXAMPLES = [str(ROOT / "examples" / name) for name in ("lenet5.yaml", "notes_cnn.yaml", "audio1d.yaml")]
CONVCALC = [sys.executable, "-m", "convcalc"]
INT64 = 2**63
TIMEOUT = 60
"""Seconds a real process may take before it counts as hung."""
HANG = 120
"""Seconds an in-process case may take before it counts as hung: no wall-clock deadline, only a hang catcher."""

STEERING = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""Characters that steer a terminal or reorder what it shows: C0 controls but tab and newline (ESC, BEL, CR,
backspace), DEL, C1 controls (CSI, NEL), bidirectional overrides (U+202E) and isolates."""
PYTHON_LEAKS = re.compile(
    r"Traceback|object has no attribute|NoneType|invalid literal for|unsupported operand|not subscriptable|"
    r"'\w+' object is not|required positional argument|were given|unexpected keyword argument|index out of range|"
    r"KeyError|ValueError|TypeError|"
    r"OverflowError|RecursionError|ZeroDivisionError|division by zero|math domain error|cannot convert float|"
    r"Exceeds the limit|MemoryError|codec can't|<built-in|<function|0x[0-9a-f]{8,}>"
)
"""What a Python exception's text looks like: an error line that says this says nothing a user can act on."""


# --- text of every kind ------------------------------------------------------------------------------------

FRAGMENTS = [
    "\x1b[2J", "\x1b]0;x\x07", "\x1b[31m", "\x9b31m", "\x07", "\x08", "\r", "\r\n", "\n", "\t", "\x85", "\u2028",
    "\u2029", "\u202e", "\u2066", "\ufeff", "\ufffe", "\uffff", "\x7f", "\x00", '"', "'", '"""', "'''", "\\", "\\|",
    "|", "`", "#", "\\n", "</text>", "<!--", "]]>", "&amp;", "&#27;", "%s", "{0}", "${HOME}", "$(id)", "-", "--",
    ": ", "- ", "&a", "*a", "!!", "x", "__import__('os')", "saved_1", "self", "torch",
]  # fmt: skip
"""Seeds mixed into generated text: terminal escapes, line and paragraph breaks, quotes and what ends a string,
a comment, a Markdown cell or an XML element, and names the emitted code uses itself."""
ARGV_FRAGMENTS = [fragment for fragment in FRAGMENTS if "\x00" not in fragment]


@st.composite
def hostile_texts(draw: st.DrawFn, where: str = "file") -> str:
    """Any text, controls and seeds mixed in, as ``where`` can carry it.

    ``file`` (a stack file) carries anything, lone surrogates included (YAML's ``"\\ud800"``); ``argv`` (a
    command line, the environment, a file name) carries no NUL, and lone surrogates only as Python decodes
    bytes that are not UTF-8 (U+DC80 to U+DCFF).
    """
    argv = where == "argv"
    chars = st.characters(exclude_categories=["Cs"], exclude_characters="\x00" if argv else "")
    controls = st.characters(categories=["Cc", "Cf", "Zl", "Zp"], exclude_characters="\x00" if argv else "")
    fragments = ARGV_FRAGMENTS if argv else FRAGMENTS
    piece = st.one_of(
        st.text(chars, max_size=10), st.sampled_from(fragments), st.text(controls, min_size=1, max_size=3)
    )
    text = "".join(draw(st.lists(piece, max_size=4)))
    if draw(st.integers(0, 9 if argv else 29)) == 0:
        low, high = (0xDC80, 0xDCFF) if argv else (0xD800, 0xDFFF)  # argv: a byte that is not UTF-8, decoded
        lone = draw(st.characters(min_codepoint=low, max_codepoint=high))
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + lone + text[cut:]
    if draw(st.integers(0, 19)) == 0:
        text *= draw(st.integers(20, 500))
        event("text: long")
    if STEERING.search(text):
        event("text: with terminal controls")
    if any(0xD800 <= ord(char) <= 0xDFFF for char in text):
        event("text: with lone surrogates")
    return text


@st.composite
def file_names(draw: st.DrawFn) -> str:
    """One path component: any text a file system takes (no '/' and no NUL), at most 200 bytes."""
    name = draw(hostile_texts("argv")).replace("/", "\u2215")
    if name in ("", ".", ".."):
        name += "n"
    while len(os.fsencode(name)) > 200:
        name = name[: len(name) // 2] or "n"
    return name


# --- integers and floats of every size, as text ---------------------------------------------------------------

DIGIT_ZEROS = [0x0660, 0x06F0, 0x0966, 0x0E50, 0xFF10, 0x1D7CE]
"""Zeros of other decimal digit systems: Arabic-Indic, Persian, Devanagari, Thai, fullwidth, mathematical bold."""
SUPERSCRIPTS = "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"
EDGES = [2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**62, INT64 - 1, INT64 + 1, 2**64, 10**19, 10**100]
INTEGER_KINDS = ["unbounded", "0 and 1", "around 2**63", "other edges", "thousands of digits", "written oddly"]
ODD_STYLES = ["sign", "leading zeros", "underscores", "spaces", "other digits", "superscripts", "decimal point",
              "exponent", "hex", "newline"]  # fmt: skip


def _huge_digits(draw: st.DrawFn) -> str:
    """Thousands of digits (some right at Python's 4,300-digit conversion limit), never converted here."""
    length = draw(st.one_of(st.integers(20, 60), st.integers(4290, 4310), st.integers(1000, 9000)))
    block = draw(st.text("0123456789", min_size=1, max_size=7))
    return (draw(st.sampled_from("123456789")) + block * length)[:length]


def _oddly(draw: st.DrawFn, value: int) -> str:
    style = draw(st.sampled_from(ODD_STYLES))
    event(f"integer written as: {style}")
    sign, digits = ("-" if value < 0 else ""), str(abs(value))
    if style == "sign":
        return ("+" if value >= 0 else "-") + digits
    if style == "leading zeros":
        return sign + "0" * draw(st.integers(1, 30)) + digits
    if style == "underscores":
        return sign + "_".join(digits)
    if style == "spaces":
        return f" {sign}{digits}\t"
    if style == "other digits":
        zero = draw(st.sampled_from(DIGIT_ZEROS))
        return sign + "".join(chr(zero + int(digit)) for digit in digits)
    if style == "superscripts":
        return sign + "".join(SUPERSCRIPTS[int(digit)] for digit in digits)
    if style == "decimal point":
        return f"{sign}{digits}.0"
    if style == "exponent":
        return f"{sign}{digits}e0"
    if style == "hex":
        return sign + hex(abs(value))
    return f"{sign}{digits}\n"


@st.composite
def integer_texts(draw: st.DrawFn, low: int = 1, high: int = 8, small: int = 0) -> str:
    """An integer as a command line or a file writes it: of any size, 0 and +-1, at the edges of torch's 64-bit
    integers, with thousands of digits, or written oddly; or (``small`` chances in ``small + 6``) in ``low..high``."""
    kind = draw(st.sampled_from(["small"] * small + INTEGER_KINDS))
    event(f"integer: {kind}")
    if kind == "small":
        return str(draw(st.integers(low, high)))
    if kind == "unbounded":
        return str(draw(st.integers()))
    if kind == "0 and 1":
        return str(draw(st.sampled_from([0, 1, -1])))
    if kind == "around 2**63":
        return str(draw(st.sampled_from([1, -1])) * INT64 + draw(st.integers(-2, 2)))
    if kind == "other edges":
        return str(draw(st.sampled_from([1, -1])) * draw(st.sampled_from(EDGES)))
    if kind == "thousands of digits":
        return draw(st.sampled_from(["", "-"])) + _huge_digits(draw)
    return _oddly(draw, draw(st.integers(low - 2, high + 100)))


SEPARATORS = ["x"] * 6 + ["X", "\u00d7", "*", ",", " x ", "xx", ""]


@st.composite
def size_texts(draw: st.DrawFn, low: int = 1, high: int = 40, most: int = 3) -> str:
    """``227``, ``32x64``, ...: one to ``most + 1`` integers, one of them hostile, joined mostly by ``x``."""
    parts = [str(draw(st.integers(low, high))) for _ in range(draw(st.integers(1, most + 1)))]
    parts[draw(st.integers(0, len(parts) - 1))] = draw(integer_texts(low, high))
    return draw(st.sampled_from(SEPARATORS)).join(parts)


class Lit(str):
    """A scalar written into the YAML as this very text, plain (unquoted) wherever YAML allows it."""


class Tagged(str):
    """A scalar with an explicit YAML tag, ``!!int '86'``: the tag (``int``, ``float``, ...) is ``tag``."""

    tag = "str"


def tagged(tag: str, text: str) -> Tagged:
    scalar = Tagged(text)
    scalar.tag = tag
    return scalar


TAGS = ["int", "float", "bool", "null", "str", "timestamp", "binary"]


@st.composite
def tagged_scalars(draw: st.DrawFn) -> Tagged:
    """Any text under any of YAML's scalar tags: ``!!int 'abc'``, ``!!float '1_0'``, ``!!bool '2'``."""
    tag = draw(st.sampled_from(TAGS))
    event(f"explicit tag: !!{tag}")
    text = draw(st.one_of(integer_texts(), st.text(max_size=10), st.text("0123456789_+-.:xXbBoOeE \n", max_size=10)))
    return tagged(tag, text)


class Name(str):
    """A name the stack file gives (Save, Add, Concat): emitted code may show it in comments and strings only."""


YAML_INTEGER_FORMS = ["decimal"] * 4 + ["hex", "binary", "octal", "base 60", "underscores", "signed", "number-like",
                                        "explicit tag"]  # fmt: skip


@st.composite
def yaml_integers(draw: st.DrawFn, low: int = 1, high: int = 8) -> str:
    """An integer literal in any form YAML 1.1 reads as one, with any body, or text that nearly is one, or any
    text with an explicit tag."""
    form = draw(st.sampled_from(YAML_INTEGER_FORMS))
    event(f"YAML integer: {form}")
    if form == "explicit tag":
        return draw(tagged_scalars())
    sign = draw(st.sampled_from(["", "", "-", "+"]))
    if form == "decimal":
        return Lit(draw(integer_texts(low, high, small=1)))
    if form == "hex":
        return Lit(sign + "0x" + draw(st.text("0123456789abcdefABCDEF_", max_size=20)))
    if form == "binary":
        return Lit(sign + "0b" + draw(st.text("01_", max_size=70)))
    if form == "octal":
        return Lit(sign + "0" + draw(st.text("01234567_", min_size=1, max_size=25)))
    if form == "base 60":
        parts = draw(st.lists(st.integers(0, 59), min_size=2, max_size=4))
        return Lit(sign + str(draw(st.integers(1, 10**6))) + "".join(f":{part:02d}" for part in parts[1:]))
    if form == "underscores":
        return Lit(sign + draw(st.sampled_from("123456789")) + draw(st.text("0123456789_", max_size=30)))
    if form == "signed":
        return Lit(draw(st.sampled_from("+-")) + draw(integer_texts(low, high)).strip())
    return Lit(draw(st.text("0123456789_+-.:xXbBoOeE", min_size=1, max_size=10)))


FLOAT_EDGES = [math.nan, math.inf, -math.inf, -0.0, 0.0, 1e308, -1e308, 1.7976931348623157e308, 5e-324, -5e-324,
               2.2250738585072014e-308, float(INT64), 1e19, 0.5, 1.0, 2.0]  # fmt: skip
SPECIAL_SPELLINGS = {"nan": [".nan", ".NaN", ".NAN"], "inf": [".inf", ".Inf", ".INF", "+.inf"],
                     "-inf": ["-.inf", "-.Inf", "-.INF"]}  # fmt: skip
FLOAT_FORMS = ["YAML", "repr", "17 digits", "underscores", "as an integer", "explicit tag"]


def _float_class(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf"
    if value == 0:
        return "-0.0" if math.copysign(1, value) < 0 else "0.0"
    if abs(value) < 2.2250738585072014e-308:
        return "subnormal"
    return "huge" if abs(value) >= 1e18 else "finite"


@st.composite
def yaml_floats(draw: st.DrawFn) -> str:
    """A float of any kind, written as YAML spells it (``.nan``, ``-.inf``, ``1.0e+308``) or as Python does
    (``1e+308``, ``nan``: text to YAML 1.1), with 17 digits, with underscores, or as the integer it equals."""
    value = draw(st.one_of(st.sampled_from(FLOAT_EDGES), st.floats()))
    form = draw(st.sampled_from(FLOAT_FORMS))
    event(f"float: {_float_class(value)}")
    event(f"float written as: {form}")
    if form == "explicit tag":
        return tagged(draw(st.sampled_from(["float", "int"])), draw(st.sampled_from([repr(value), f"{value:.3e}"])))
    if not math.isfinite(value) and form != "repr":
        return Lit(draw(st.sampled_from(SPECIAL_SPELLINGS[repr(value)])))
    text = repr(value)
    if form == "YAML" and "." not in text:
        return Lit(text.replace("e", ".0e"))
    if form == "17 digits":
        return Lit(f"{value:.17e}")
    if form == "underscores" and re.match(r"-?[0-9]{2}", text):
        cut = 2 if text.startswith("-") else 1
        return Lit(text[:cut] + "_" + text[cut:])
    if form == "as an integer" and math.isfinite(value):
        return Lit(str(int(value)))
    return Lit(text)


# --- stack files ----------------------------------------------------------------------------------------------

DIMENSIONAL = re.compile(r"([123])d$")
NUMERIC = {Type.INT, Type.NUMBER, Type.PER_AXIS, Type.PADDING, Type.OPTIONAL_SIZES, Type.NUMBERS}
FLOATY = {Type.NUMBER, Type.NUMBERS}
LISTY = {Type.PER_AXIS, Type.PADDING, Type.OPTIONAL_SIZES, Type.NUMBERS}
TEXTUAL = {Type.TEXT, Type.PADDING, Type.NAME, Type.NAMES, Type.CROP}


class _Writer(yaml.SafeDumper):
    """YAML out: a Lit as its own text; text with NEL or a line separator double-quoted (PyYAML's emitter turns
    those into spaces in other styles)."""


def _represent_lit(dumper: yaml.SafeDumper, value: Lit) -> yaml.ScalarNode:
    text = str(value)
    return dumper.represent_scalar(dumper.resolve(yaml.ScalarNode, text, (True, False)), text)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if any(char in value for char in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style=style)


def _represent_tagged(dumper: yaml.SafeDumper, value: Tagged) -> yaml.ScalarNode:
    return dumper.represent_scalar(f"tag:yaml.org,2002:{value.tag}", str(value))


_Writer.add_representer(Lit, _represent_lit)
_Writer.add_representer(Tagged, _represent_tagged)
_Writer.add_representer(Name, _represent_str)
_Writer.add_representer(str, _represent_str)


def to_yaml(draw: st.DrawFn, data: Any) -> str:
    """``data`` as a YAML file, in block or flow style, with or without raw Unicode."""
    return yaml.dump(data, Dumper=_Writer, sort_keys=False, allow_unicode=draw(st.booleans()),
                     default_flow_style=draw(st.sampled_from([False, None, True])),
                     width=draw(st.sampled_from([80, 10**6])))  # fmt: skip


def renamed(data: Any, names: dict[str, str]) -> Any:
    """``data`` with every Name replaced by its neutral stand-in."""
    if isinstance(data, Name):
        return Name(names[data])
    if isinstance(data, dict):
        return {key: renamed(value, names) for key, value in data.items()}
    if isinstance(data, list):
        return [renamed(item, names) for item in data]
    return data


def user_names(data: Any) -> list[str]:
    """Every Name in ``data``, once each, in order."""
    found: list[str] = []
    if isinstance(data, Name):
        found.append(str(data))
    elif isinstance(data, dict):
        for value in data.values():
            found += user_names(value)
    elif isinstance(data, list):
        for item in data:
            found += user_names(item)
    return list(dict.fromkeys(found))


class StackWriter:
    """Draws one stack file: sensible layers from the whole catalogue, which mostly run, with one to three hostile
    numbers in numeric fields (``numbers``) or hostile texts in string fields (``strings``). With ``strings``
    the names that Save, Add and Concat share are hostile text too."""

    def __init__(self, draw: st.DrawFn, *, numbers: bool, strings: bool) -> None:
        self.draw, self.numbers, self.strings = draw, numbers, strings
        self.budget = draw(st.integers(1, 3)) if numbers or strings else 0
        self.dims = draw(st.integers(1, 3))
        self.layer_names = sorted(
            name for name in LAYERS if (m := DIMENSIONAL.search(name)) is None or int(m[1]) == self.dims
        )
        texts = draw(st.lists(hostile_texts("file"), min_size=1, max_size=3)) if strings else ["a", "skip"]
        self.names = [Name(text or "n") for text in texts]

    def chance(self, one_in: int) -> bool:
        return self.draw(st.integers(0, one_in - 1)) == 0

    def hostile(self, one_in: int) -> bool:
        """Whether to put a hostile value here: by chance, while the budget lasts."""
        if self.budget and self.chance(one_in):
            self.budget -= 1
            return True
        return False

    def text(self, where: str) -> str:
        event(f"string field: {where}")
        return self.draw(hostile_texts("file"))

    def stack(self) -> dict[Any, Any]:
        data: dict[Any, Any] = {"input": self.input_shape(), "layers": self.layers(0)}
        if self.chance(40):
            del data[self.draw(st.sampled_from(["input", "layers"]))]
        if self.strings and self.hostile(20):
            data[self.text("top-level key")] = self.draw(st.sampled_from([None, 1, "x", []]))
        return data

    def input_shape(self) -> list[Any]:
        draw = self.draw
        shape: list[Any] = [draw(st.integers(1, 2)), draw(st.integers(1, 4))]
        shape += [draw(st.integers(4, 24)) for _ in range(self.dims)]
        if self.numbers and self.hostile(8):
            event("numeric field: input")
            if self.chance(5):
                shape = [1] * draw(st.integers(0, 80))
            else:
                shape[draw(st.integers(0, len(shape) - 1))] = self.number(Type.INT, "input")
        if self.strings and self.hostile(20):
            shape[draw(st.integers(0, len(shape) - 1))] = self.text("input")
        return shape

    def layers(self, depth: int) -> list[Any]:
        return [self.item(depth) for _ in range(self.draw(st.integers(0 if depth else 1, 6)))]

    def item(self, depth: int) -> Any:
        choice = self.draw(st.integers(0, 11))
        if choice == 0 and depth < 2:
            return self.block(depth)
        if choice in (1, 2):
            return self.join()
        return self.layer(self.draw(st.sampled_from(self.layer_names)))

    def shown(self, word: str, what: str) -> str:
        """A layer or keyword name as the file writes it: itself, or (strings) hostile text, or itself spoilt."""
        if not self.strings or not self.hostile(20):
            return word
        how = self.draw(st.integers(0, 2))
        return self.text(what) if how == 0 else word + self.text(what) if how == 1 else word.swapcase()

    def layer(self, name: str) -> Any:
        arguments: dict[str, Any] = {}
        for arg in LAYERS[name].args:
            required = arg.default is REQUIRED and arg.infer is None
            if self.numbers and arg.type in NUMERIC and self.hostile(5):
                value = self.number(arg.type, arg.name)
            elif self.strings and arg.type in TEXTUAL and self.hostile(3):
                value = self.text("string argument")
            elif self.strings and self.hostile(30):
                value = self.text("non-string argument")
            elif (required and self.chance(40)) or (not required and not self.chance(4)):
                continue
            else:
                value = self.sensible(arg)
            arguments[self.shown(arg.name, "keyword name")] = value
        if self.strings and self.hostile(30):
            arguments[self.text("unknown keyword name")] = 1
        shown = self.shown(name, "layer name")
        if not arguments and self.chance(2):
            return shown
        if arguments and self.chance(12):
            values = list(arguments.values())
            return {shown: values[0] if len(values) == 1 else values}
        return {shown: arguments or None}

    def sensible(self, arg: Arg) -> Any:
        draw, kind = self.draw, arg.type
        if arg.choices:
            return draw(st.sampled_from(arg.choices))
        if kind is Type.INT:
            return draw(st.integers(-2, 2)) if "dim" in arg.name else draw(st.integers(1, 4))
        if kind is Type.NUMBER:
            return draw(st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.0, -1.0]))
        if kind is Type.BOOL:
            return draw(st.booleans())
        if kind is Type.PER_AXIS:
            return draw(st.one_of(st.integers(1, 3), st.lists(st.integers(1, 3), min_size=1, max_size=3)))
        if kind is Type.PADDING:
            return draw(st.one_of(st.integers(0, 2), st.sampled_from(["same", "valid"])))
        if kind is Type.OPTIONAL_SIZES:
            item = st.one_of(st.none(), st.integers(1, 4))
            return draw(st.one_of(st.integers(1, 4), st.lists(item, min_size=1, max_size=3)))
        if kind is Type.NUMBERS:
            items = st.lists(st.sampled_from([1.0, 2.0]), min_size=1, max_size=3)
            return draw(st.one_of(st.sampled_from([0.5, 1.0, 2.0]), items))
        return None

    def number(self, kind: Type, where: str) -> Any:
        """A hostile number for a field of type ``kind``: mostly of its own kind, sometimes the other."""
        event(f"numeric field: {kind.name}")
        floaty = kind in FLOATY
        if floaty:
            event(f"float field: {where}")
        one = self.draw(yaml_floats()) if floaty != self.chance(4) else self.draw(yaml_integers(-2, 8))
        if kind in LISTY and self.chance(2):
            items: list[Any] = [self.draw(st.integers(1, 3)) for _ in range(self.draw(st.integers(1, 4)))]
            if kind is Type.OPTIONAL_SIZES and self.chance(2):
                items[0] = None
            items[self.draw(st.integers(0, len(items) - 1))] = one
            return items
        return one

    def name(self) -> Name:
        if self.chance(10):
            return Name(self.text("name never saved")) if self.strings else Name("never_saved")
        return self.draw(st.sampled_from(self.names))

    def join(self) -> Any:
        which = self.draw(st.sampled_from(["Save", "Add", "Concat"]))
        if self.strings:
            event("string field: Save/Add/Concat name")
        name = self.name()
        if which == "Save":
            return {"Save": name if self.chance(2) else {"name": name}}
        if which == "Add":
            return {"Add": {"with": name} if self.chance(2) else name}
        arguments: dict[str, Any] = {"with": name}
        if self.chance(2):
            hostile = self.numbers and self.hostile(3)
            arguments["dim"] = self.number(Type.INT, "dim") if hostile else self.draw(st.integers(-2, 2))
        if self.chance(2):
            crop = st.sampled_from([True, False, "center"])
            arguments["crop"] = self.text("crop") if self.strings and self.hostile(3) else self.draw(crop)
        return {"Concat": arguments}

    def block(self, depth: int) -> Any:
        if self.chance(2):
            arguments: dict[str, Any] = {"body": self.layers(depth + 1)}
            if self.chance(2):
                arguments["shortcut"] = self.layers(depth + 1)
            return {self.shown("Residual", "layer name"): arguments}
        hostile = self.numbers and self.hostile(3)
        times = self.number(Type.INT, "times") if hostile else self.draw(st.integers(1, 3))
        return {self.shown("Repeat", "layer name"): {"times": times, "layers": self.layers(depth + 1)}}


@st.composite
def stacks(draw: st.DrawFn, numbers: bool = False, strings: bool = False) -> dict[Any, Any]:
    return StackWriter(draw, numbers=numbers, strings=strings).stack()


@st.composite
def runnable_stacks(draw: st.DrawFn, names: list[Name]) -> dict[str, Any]:
    """A stack that runs: layers that keep the shape, Saves, and the joins, blocks and crops that then fit."""
    dims, channels, size = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(6, 12))

    def keep() -> Any:
        choice = draw(st.sampled_from(["ReLU", "Identity", "Tanh", "BatchNorm", "Conv", "Dropout", "GELU",
                                       "LeakyReLU"]))  # fmt: skip
        if choice == "BatchNorm":
            return f"BatchNorm{dims}d"
        if choice == "Conv":
            arguments: dict[str, Any] = {"out_channels": channels, "kernel_size": 3,
                                         "padding": draw(st.sampled_from([1, "same"]))}  # fmt: skip
            if draw(st.booleans()):
                arguments["padding_mode"] = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
            return {f"Conv{dims}d": arguments}
        if choice == "Dropout":
            return {"Dropout": {"p": draw(st.sampled_from([0.0, 0.25, 1.0]))}}
        if choice == "GELU":
            return {"GELU": {"approximate": draw(st.sampled_from(["none", "tanh"]))}}
        if choice == "LeakyReLU":
            return {"LeakyReLU": {"negative_slope": draw(st.floats(-1e6, 1e6))}}
        return choice

    saved: list[Name] = []
    layers: list[Any] = []
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["keep", "save", "save", "add", "concat", "residual", "repeat"]))
        if op == "save":
            saved.append(draw(st.sampled_from(names)))
            layers.append({"Save": saved[-1]})
        elif op == "add" and saved:
            layers.append({"Add": {"with": draw(st.sampled_from(saved))}})
        elif op == "concat" and saved:
            crop = draw(st.sampled_from([False, True, "center"]))
            layers.append({"Concat": {"with": draw(st.sampled_from(saved)), "dim": 1, "crop": crop}})
            layers.append({f"Conv{dims}d": {"out_channels": channels, "kernel_size": 1}})
        elif op == "residual":
            block: dict[str, Any] = {"body": [keep() for _ in range(draw(st.integers(1, 3)))]}
            if draw(st.booleans()):
                block["shortcut"] = [keep()]
            layers.append({"Residual": block})
        elif op == "repeat":
            layers.append({"Repeat": {"times": draw(st.integers(1, 3)), "layers": [keep(), keep()]}})
        else:
            layers.append(keep())
    return {"input": [1, channels, *[size] * dims], "layers": layers}


# --- the property -------------------------------------------------------------------------------------------


def shown(args: Iterable[str], stdin: str | bytes | None = None) -> str:
    """A case as a shell would run it, shortened where it is very long."""
    line = "convcalc " + shlex.join(args)
    if stdin is not None:
        line += f"  <<< {stdin!r}"
    return line if len(line) < 3000 else line[:1500] + " ... " + line[-1000:]


def assert_outcome(code: int, stdout: str, stderr: str, what: str, allowed: Iterable[int] = (0, 1, 2)) -> None:
    """Exit code, traceback, terminal controls and the one Error line, for any run."""
    assert code in allowed, f"exit {code}: {what}\nstderr: {stderr[-2000:]!r}"
    for stream, text in (("stdout", stdout), ("stderr", stderr)):
        assert "Traceback (most recent call last)" not in text, f"traceback on {stream}: {what}\n{text[-3000:]}"
        bad = STEERING.search(text)
        assert bad is None, (
            f"raw {bad.group()!r} on {stream}: {what}\n...{text[max(0, bad.start() - 80) : bad.end() + 80]!r}..."
        )
    errors = [line for line in stderr.split("\n") if line.startswith("Error:")]
    if code in (1, 2):
        assert len(errors) == 1, f"exit {code} with {len(errors)} Error lines: {what}\nstderr: {stderr[-2000:]!r}"
        message = errors[0][len("Error:") :].strip()
        assert len(message) > 5, f"an Error line that says nothing: {what}\n{errors[0]!r}"
        leak = PYTHON_LEAKS.search(message)
        assert leak is None, f"an Error line that is a Python exception ({leak.group()!r}): {what}\n{errors[0]!r}"
    elif code == 0:
        assert errors == [], f"exit 0 with an Error line: {what}\nstderr: {stderr[-2000:]!r}"
    else:  # 130, 141, 143: the run ends quietly
        assert errors == [] and "Aborted" not in stderr, f"exit {code} is not quiet: {what}\n{stderr[-2000:]!r}"


def _strict_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _cells(line: str) -> int:
    """Cells of a Markdown table row; ``\\|`` is a pipe inside a cell."""
    return len(re.split(r"(?<!\\)\|", line.strip())) - 2


def assert_form(form: str, stdout: str, raw: bytes, what: str) -> None:
    """The output parses in the form asked for."""
    if form == "json":
        try:
            data = json.loads(stdout, parse_constant=_strict_constant)
        except ValueError as error:
            raise AssertionError(f"--json that is not JSON ({error}): {what}\n{stdout[:2000]!r}") from None
        assert isinstance(data, dict), f"JSON that is not an object: {what}"
    elif form == "csv":
        try:
            rows = list(csv.reader(io.StringIO(stdout, newline=""), strict=True))
        except csv.Error as error:
            raise AssertionError(f"--csv that is not CSV ({error}): {what}\n{stdout[:2000]!r}") from None
        assert rows, f"CSV with no header: {what}"
        bad = [row for row in rows if len(row) != len(rows[0])]
        assert not bad, f"CSV rows of {len(rows[0])} cells and of {len(bad[0])}: {what}\n{bad[0]!r}"
    elif form == "markdown":
        table = [line for line in stdout.split("\n") if line.startswith("|")]
        assert len(table) >= 2, f"no Markdown table: {what}\n{stdout[:2000]!r}"
        assert re.fullmatch(r"\|(:?-+:?\|)+", table[1]), f"no Markdown header rule: {what}\n{table[1]!r}"
        width = _cells(table[0])
        bad = [line for line in table if _cells(line) != width or not line.rstrip().endswith("|")]
        assert not bad, f"Markdown rows other than {width} cells wide: {what}\n{bad[0]!r}"
    elif form == "size":
        size = r"([0-9]+(x[0-9]+)*|\(\))"  # () is a 0-D tensor; several outputs give a line each: name, tab, size
        assert re.fullmatch(rf"{size}\n|([^\t\n]+\t{size}\n)+", stdout), f"-q that is not a size: {what}\n{stdout!r}"
    elif form == "options":
        assert re.fullmatch(r"--[a-z-]+( [0-9]+)?( --[a-z-]+( [0-9]+)?)*\n", stdout), f"solve -q: {what}\n{stdout!r}"
    elif form == "svg":
        assert_svg(raw, what)
    elif form == "png":
        assert raw.startswith(b"\x89PNG\r\n\x1a\n"), f"--png that is not PNG: {what}"
    elif form == "torch":
        assert_python(raw, what)


def assert_svg(raw: bytes, what: str) -> None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise AssertionError(f"SVG that is not UTF-8 ({error}): {what}") from None
    try:
        root = ElementTree.fromstring(raw)
    except ElementTree.ParseError as error:
        raise AssertionError(f"SVG that is not well-formed XML ({error}): {what}") from None
    assert root.tag.endswith("svg"), f"not SVG: {what}"
    bad = STEERING.search(text)
    assert bad is None, f"raw {bad.group()!r} in the SVG: {what}"


def assert_python(raw: bytes, what: str) -> ast.Module:
    """``--emit torch`` output is Python source, read as ``python net.py`` reads a file of these very bytes: in
    the encoding it declares, else UTF-8, strictly (``compile()`` of bytes lets a bad byte in a comment pass)."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
        tree = ast.parse(raw.decode(encoding))
        compile(tree, "<emitted>", "exec")
    except (SyntaxError, ValueError) as error:
        raise AssertionError(f"--emit torch that is not Python ({error}): {what}") from None
    return tree


def identifiers(tree: ast.AST) -> list[str]:
    """Every identifier in the module: names, attributes, functions and classes, arguments, keywords, imports."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.append(node.id)
        elif isinstance(node, ast.Attribute):
            found.append(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.append(node.name)
        elif isinstance(node, (ast.arg, ast.keyword)) and node.arg:
            found.append(node.arg)
        elif isinstance(node, ast.alias):
            found.append(node.asname or node.name)
    return found


def code_only(source: str) -> tuple[str, list[tuple[int, str]]]:
    """The source with every string literal and comment blanked out, and its tokens without them."""
    lines = io.StringIO(source).readlines()
    blanks: list[tuple[tuple[int, int], tuple[int, int]]] = []
    tokens: list[tuple[int, str]] = []
    skipped = (tokenize.COMMENT, tokenize.STRING, tokenize.NL)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.COMMENT, tokenize.STRING):
            blanks.append((token.start, token.end))
        if token.type not in skipped:
            tokens.append((token.type, token.string))
    for (row, col), (end_row, end_col) in reversed(blanks):
        for line in range(row, end_row + 1):
            text = lines[line - 1]
            start = col if line == row else 0
            stop = end_col if line == end_row else len(text.rstrip("\n"))
            lines[line - 1] = text[:start] + " " * (stop - start) + text[stop:]
    return "".join(lines), tokens


def assert_emitted_code(raw: bytes, neutral: bytes, users: Iterable[str], what: str) -> None:
    """No user text became code: the identifiers and the code outside strings and comments are what the same
    stack gives with every name replaced by a neutral one, and no user string of 3 or more characters that is
    not convcalc's own text is found in an identifier or in the code."""
    tree = assert_python(raw, what)
    source, neutral_source = raw.decode("utf-8"), neutral.decode("utf-8")
    code, tokens = code_only(source)
    neutral_code, neutral_tokens = code_only(neutral_source)
    names = identifiers(tree)
    assert sorted(names) == sorted(identifiers(ast.parse(neutral))), f"identifiers differ with the names: {what}"
    assert tokens == neutral_tokens, f"code outside strings and comments differs with the names: {what}"
    for user in users:
        if len(user) < 3 or user in neutral_code:
            continue  # short, or convcalc's own text ('torch', 'self', ...)
        assert user not in code, f"the user's {user!r} is code: {what}\n{source}"
        inside = [name for name in names if user in name]
        assert not inside, f"the user's {user!r} is in the identifier {inside[0]!r}: {what}"


def check(result: Result, what: str, form: str | None = None) -> None:
    """The property for one in-process run (click's runner)."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        trace = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
        raise AssertionError(f"{type(result.exception).__name__}: {result.exception}: {what}\n{trace}")
    raw = result.stdout_bytes
    try:
        stdout = "" if form == "png" else raw.decode("utf-8")
        stderr = result.stderr_bytes.decode("utf-8") if result.stderr_bytes else ""
    except UnicodeDecodeError as error:
        raise AssertionError(f"output that is not UTF-8 ({error}): {what}") from None
    assert_outcome(result.exit_code, stdout, stderr, what)
    event(f"exit {result.exit_code}")
    if form is None:
        return
    partial = result.exit_code == 1 and form in ("json", "csv", "markdown") and stdout.strip()
    if result.exit_code == 0 or partial:  # a stack that fails still prints its table in the form asked for
        assert_form(form, stdout, raw, what)


def fuzz(cases: str) -> settings:
    """A test's settings: its count from CASES; no wall-clock deadline (a hang is caught by the watchdog of
    :func:`check`, or a real process's timeout); no explain phase, which re-runs a failing case hundreds of times
    (the reproducer is printed anyway)."""
    return settings(
        max_examples=scaled(CASES[cases]),
        suppress_health_check=list(HealthCheck),
        phases=[phase for phase in Phase if phase is not Phase.explain],
    )


class Hung(Exception):
    """A case ran past HANG seconds: convcalc hung (the watchdog is generous, so load alone never trips it)."""


@contextlib.contextmanager
def watchdog(what: object) -> Iterator[None]:
    """Raise Hung in the case that runs longer than HANG seconds."""

    def expire(signum: int, frame: object) -> None:
        raise Hung(f"no answer after {HANG} s: {what}")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, HANG)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def invoke(args: list[str], stdin: str | bytes | None = None, columns: str = "100") -> Result:
    with watchdog(args):
        return CliRunner(env={"COLUMNS": columns}).invoke(main, args, input=stdin)


@pytest.fixture(scope="module", autouse=True)
def _scratch_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Generated command lines may name output files (``draw -o x``): they land in a folder of their own, never in
    the checkout, and a file the fuzzing writes without being asked to is found there afterwards."""
    folder = tmp_path_factory.mktemp("fuzz-cwd")
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)
    stray = [name for name in os.listdir(folder) if name.startswith(".convcalc")]
    assert stray == [], stray


@pytest.fixture(scope="module", autouse=True)
def _torch_imported() -> None:
    """--verify imports torch once (seconds): before the first case, so that no case pays for it."""
    invoke(["conv", "8", "--k", "3", "--verify", "-q"])


# --- 1, 2, 3: command lines -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    positional: tuple[str, ...]
    options: tuple[tuple[tuple[str, ...], str], ...]
    """Each option's spellings and the kind of value it takes."""
    flags: tuple[str, ...] = ()
    forms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Each output form and the arguments that ask for it."""


KERNEL = (("--kernel-size", "--k", "-k"), "per_axis")
GEOMETRY = (KERNEL, (("--stride", "--s", "-s"), "per_axis"), (("--padding", "--p", "-p"), "padding"),
            (("--dilation", "--d", "-d"), "per_axis"))  # fmt: skip
LAYER_FORMS = {"table": (), "json": ("--json",), "size": ("-q",), "explain": ("--explain",)}
COMMANDS = {
    "conv": Command(("size",), (*GEOMETRY, (("--groups",), "int"), (("--in-channels",), "positive"),
                    (("--out-channels",), "positive"), (("--padding-mode",), "choice:zeros,reflect,replicate,circular"),
                    (("--output-padding",), "per_axis"), (("--batch",), "positive"), (("--dims",), "dims")),
                    ("--bias", "--no-bias", "--transposed", "--verify"), LAYER_FORMS),
    "pool": Command(("size",), (*GEOMETRY, (("--type",), "choice:max,avg"), (("--in-channels",), "positive"),
                    (("--batch",), "positive"), (("--dims",), "dims")), ("--ceil-mode", "--verify"), LAYER_FORMS),
    "solve": Command(("size", "size"), ((("--kernel-size", "--k", "-k"), "int"), (("--stride", "--s", "-s"), "int"),
                     (("--padding", "--p", "-p"), "int"), (("--dilation", "--d", "-d"), "int"),
                     (("--output-padding",), "int"), (("--type",), "choice:max,avg"), (("--max-kernel",), "bound"),
                     (("--max-stride",), "bound"), (("--max-dilation",), "bound"), (("--limit",), "bound")),
                     ("--transposed", "--ceil-mode", "--floor-mode"),
                     {"table": (), "json": ("--json",), "options": ("-q",)}),
    "stack": Command(("file",), ((("--input",), "shape"),
                     (("--dtype",), "choice:float32,float64,float16,bfloat16,int8,uint8")), ("--verify",),
                     {"table": (), "json": ("--json",), "csv": ("--csv",), "markdown": ("--markdown",),
                      "size": ("-q",), "explain": ("--explain",), "torch": ("--emit", "torch")}),
    "fit": Command(("file",), ((("--range",), "range"),), (), {"text": (), "json": ("--json",)}),
    "draw": Command(("file",), ((("--width",), "width"), (("--theme",), "choice:light,dark"), (("--title",), "text"),
                    (("--input",), "shape"), (("--output", "-o"), "output")), ("--png",), {"svg": ()}),
}  # fmt: skip
EVERY_OPTION = sorted({name for command in COMMANDS.values() for names, _ in command.options for name in names})
EVERY_FLAG = [
    *sorted({flag for command in COMMANDS.values() for flag in command.flags}), "--json", "--csv", "--markdown", "-q",
    "--quiet", "--explain", "--emit", "--help", "-h", "--version", "-V", "--", "-",
]  # fmt: skip


SENSIBLE = {
    "size": st.lists(st.integers(8, 64), min_size=1, max_size=3).map(lambda sizes: "x".join(map(str, sizes))),
    "shape": st.lists(st.integers(1, 32), min_size=3, max_size=5).map(lambda sizes: "x".join(map(str, sizes))),
    "per_axis": st.integers(1, 3).map(str),
    "padding": st.sampled_from(["0", "1", "same", "valid"]),
    "int": st.integers(0, 2).map(str),
    "positive": st.integers(1, 16).map(str),
    "dims": st.integers(1, 3).map(str),
    "bound": st.integers(1, 8).map(str),
    "width": st.integers(300, 2000).map(str),
    "range": st.tuples(st.integers(1, 40), st.integers(0, 100)).map(lambda pair: f"{pair[0]}:{sum(pair)}"),
    "text": st.text(st.characters(codec="ascii", categories=["L", "N", "Zs"]), max_size=12),
    "output": st.sampled_from(["-", "/dev/null"]),
}
"""Values that let a command get to its output."""


@st.composite
def option_values(draw: st.DrawFn, kind: str, hostile: bool) -> str:
    """A value for an option of ``kind``: sensible, or (``hostile``) of its class at any size, or any text."""
    if not hostile:
        return draw(
            st.sampled_from(kind[len("choice:") :].split(",")) if kind.startswith("choice:") else SENSIBLE[kind]
        )
    if kind == "text" or kind.startswith("choice:") or draw(st.integers(0, 4)) == 0:
        return draw(hostile_texts("argv"))
    if kind in ("size", "shape", "per_axis"):
        return draw(size_texts(0 if kind == "per_axis" else 1, 40, most=8 if kind == "shape" else 3))
    if kind == "padding":
        return draw(st.one_of(size_texts(0, 3), st.sampled_from(["same", "valid", "SAME", "same ", "full"])))
    if kind == "range":
        separator = draw(st.sampled_from([":"] * 6 + ["-", "..", ": ", "", "::"]))
        return draw(integer_texts(1, 64, small=3)) + separator + draw(integer_texts(1, 64, small=3))
    if kind == "output":
        return draw(st.sampled_from(["", "-", "/dev/null"]))  # no file is written by this test
    return draw(integer_texts())


@st.composite
def file_arguments(draw: st.DrawFn, hostile: bool) -> tuple[str, str | None]:
    """FILE: an example or standard input with a generated stack, else (``hostile``) a stack with hostile numbers
    or text on standard input, a missing file, a directory, any text."""
    kinds = ["stdin, hostile", "missing", "directory", "any text"] if hostile else ["example", "stdin"]
    kind = draw(st.sampled_from(kinds))
    event(f"FILE: {kind}")
    if kind == "example":
        return draw(st.sampled_from(EXAMPLES)), None
    if kind == "stdin":
        return "-", to_yaml(draw, draw(stacks()))
    if kind == "stdin, hostile":
        return "-", to_yaml(draw, draw(st.one_of(stacks(numbers=True), stacks(strings=True))))
    if kind == "missing":
        return str(ROOT / "missing.yaml"), None
    if kind == "directory":
        return str(ROOT / "examples"), None
    return draw(hostile_texts("argv")), None


@dataclass(frozen=True)
class Case:
    args: list[str]
    stdin: str | None
    form: str | None
    columns: str


@st.composite
def columns_values(draw: st.DrawFn) -> str:
    """COLUMNS: mostly 100, else junk (unicode digits, negatives, huge, any text)."""
    if draw(st.integers(0, 5)):
        return "100"
    event("COLUMNS: junk")
    return draw(st.one_of(integer_texts(1, 300, small=1), hostile_texts("argv")))


@st.composite
def command_lines(draw: st.DrawFn) -> Case:
    """A command line for any command, its arguments and options in any order and spelling: one value hostile
    and the rest sensible, or (one case in five) every value hostile."""
    name = draw(st.sampled_from([*COMMANDS, "unknown"]))
    event(f"command: {name}")
    if name == "unknown":
        args = [draw(hostile_texts("argv")), *draw(st.lists(hostile_texts("argv"), max_size=3))]
        return Case(args, None, None, "100")
    command = COMMANDS[name]
    chaos = draw(st.integers(0, 4)) == 0
    chosen = []
    for names, kind in command.options:
        required = names == KERNEL[0] and name in ("conv", "pool")
        if (draw(st.integers(0, 9)) > 0) if required else (draw(st.integers(0, 3)) == 0):
            chosen.append((names, kind))
    slots = len(command.positional) + len(chosen)
    hostile = draw(st.integers(0, slots * 3 // 2))  # >= slots: nothing (but the file's contents, if hostile)
    groups: list[list[str]] = []
    stdin = None
    output: str | None = None
    for index, kind in enumerate(command.positional):
        if kind == "file":
            path, stdin = draw(file_arguments(chaos or index == hostile))
            groups.append([path])
        else:
            groups.append([draw(option_values("size", chaos or index == hostile))])
    for index, (names, kind) in enumerate(chosen, start=len(command.positional)):
        bad = chaos or index == hostile
        if bad:
            event(f"hostile value: {kind.split(':')[0]}")
        spelling, value = draw(st.sampled_from(names)), draw(option_values(kind, bad))
        if kind == "output":
            output = value
        style = draw(st.integers(0, 4))
        if style == 0 and spelling.startswith("--"):
            groups.append([f"{spelling}={value}"])
        elif style == 0 and value:
            groups.append([spelling + value])
        else:
            groups.append([spelling, value])
    for flag in command.flags:
        if draw(st.integers(0, 9)) == 0:
            groups.append([flag])
    form: str | None = draw(st.sampled_from(sorted(command.forms)))
    assert form is not None
    groups += [[word] for word in command.forms[form]]
    if draw(st.integers(0, 9)) == 0:  # two forms at once: a usage error
        groups += [[word] for word in command.forms[draw(st.sampled_from(sorted(command.forms)))]]
        form = None
    args = [name, *(word for group in draw(st.permutations(groups)) for word in group)]
    if name == "draw":
        form = ("png" if "--png" in args else "svg") if output in (None, "-") else None
    if form == "explain":
        form = "table"
    if draw(st.integers(0, 7)) == 0:
        event("command line: scrambled")
        for _ in range(draw(st.integers(1, 3))):
            junk = draw(st.one_of(st.sampled_from(EVERY_OPTION + EVERY_FLAG), hostile_texts("argv")))
            args.insert(draw(st.integers(1, len(args))), junk)
        if draw(st.booleans()) and len(args) > 1:
            del args[draw(st.integers(1, len(args) - 1))]
        form = None
    event(f"form: {form}")
    return Case(args, stdin, form, draw(columns_values()))


@fuzz("arguments")
@given(case=command_lines())
def test_command_lines(case: Case) -> None:
    what = shown(case.args, case.stdin) + (f"  (COLUMNS={case.columns!r})" if case.columns != "100" else "")
    result = invoke(case.args, case.stdin, case.columns)
    check(result, what, case.form)


# --- 1, 2, 3: stack files -------------------------------------------------------------------------------------

STACK_RUNS = [
    (("stack", "-"), "table"), (("stack", "-", "--json"), "json"), (("stack", "-", "--csv"), "csv"),
    (("stack", "-", "--markdown"), "markdown"), (("stack", "-", "-q"), "size"), (("stack", "-", "--explain"), "table"),
    (("stack", "-", "--emit", "torch"), "torch"), (("fit", "-"), "text"), (("fit", "-", "--json"), "json"),
    (("draw", "-"), "svg"), (("stack", "-", "--verify"), "table"), (("stack", "-", "--verify", "--json"), "json"),
]  # fmt: skip


def run_stack_file(data: dict[Any, Any], text: str, args: tuple[str, ...], form: str, columns: str = "100") -> None:
    """Run a stack file's text; for --emit torch, also its neutral twin (every name replaced), and compare."""
    what = shown(args, text)
    note(what)
    result = invoke(list(args), text, columns)
    check(result, what, form)
    if form == "torch" and result.exit_code == 0:
        names = user_names(data)
        neutral_names = {name: f"nq{index}q" for index, name in enumerate(names)}
        twin_text = yaml.dump(renamed(data, neutral_names), Dumper=_Writer, sort_keys=False)
        twin = invoke(list(args), twin_text)
        assert twin.exit_code == 0, f"the neutral twin fails: {twin.stderr}\n{twin_text}"
        assert_emitted_code(result.stdout_bytes, twin.stdout_bytes, names, what)
        event("--emit torch: compared with its neutral twin")


@fuzz("stack_numbers")
@given(data=st.data(), run=st.sampled_from(STACK_RUNS))
def test_stack_files_with_numbers_of_every_size(data: st.DataObject, run: tuple[tuple[str, ...], str]) -> None:
    stack = data.draw(stacks(numbers=True))
    text = to_yaml(data.draw, stack)
    run_stack_file(stack, text, *run)


@fuzz("stack_strings")
@given(data=st.data(), run=st.sampled_from(STACK_RUNS), columns=columns_values())
def test_stack_files_with_text_of_every_kind(
    data: st.DataObject, run: tuple[tuple[str, ...], str], columns: str
) -> None:
    stack = data.draw(stacks(strings=True))
    text = to_yaml(data.draw, stack)
    args, form = run
    if args[0] == "draw" and data.draw(st.booleans()):
        args = (*args, "--title", data.draw(hostile_texts("argv")))
    run_stack_file(stack, text, args, form, columns)


@fuzz("emit_and_draw")
@given(
    data=st.data(),
    names=st.lists(hostile_texts("file").map(lambda text: Name(text or "n")), min_size=1, max_size=3),
    file_name=file_names(),
    title=hostile_texts("argv"),
    form=st.sampled_from(["table", "json", "csv", "markdown", "size"]),
    columns=columns_values(),
)
def test_runnable_stacks_with_hostile_names_and_file_names(
    data: st.DataObject, names: list[Name], file_name: str, title: str, form: str, columns: str
) -> None:
    """A stack that runs, named by hostile Save names in a file with a hostile name: --emit torch makes no code
    of them, draw makes well-formed SVG with any title, and every output form holds no raw control."""
    stack = data.draw(runnable_stacks(names))
    text = to_yaml(data.draw, stack)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, file_name)
        twin_path = os.path.join(folder, "neutral.yaml" if file_name != "neutral.yaml" else "twin.yaml")
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
        neutral_names = {name: f"nq{index}q" for index, name in enumerate(user_names(stack))}
        with open(twin_path, "w", encoding="utf-8") as out:
            out.write(yaml.dump(renamed(stack, neutral_names), Dumper=_Writer, sort_keys=False))
        note(f"file {path!r}:\n{text}")

        emitted = invoke(["stack", path, "--emit", "torch"], columns=columns)
        what = shown(["stack", path, "--emit", "torch"]) + f"\n{text}"
        check(emitted, what, "torch")
        if emitted.exit_code == 0:
            twin = invoke(["stack", twin_path, "--emit", "torch"])
            assert twin.exit_code == 0, twin.stderr
            stem = os.path.splitext(os.path.basename(path))[0]
            assert_emitted_code(emitted.stdout_bytes, twin.stdout_bytes, [*user_names(stack), stem, path], what)
            event("--emit torch: runs")

        args = ["draw", path, "--title", title]
        check(invoke(args, columns=columns), shown(args) + f"\n{text}", "svg")
        flags = {"table": [], "json": ["--json"], "csv": ["--csv"], "markdown": ["--markdown"], "size": ["-q"]}[form]
        args = ["stack", path, *flags]
        check(invoke(args, columns=columns), shown(args) + f"\n{text}", form)


# --- junk -----------------------------------------------------------------------------------------------------

YAML_TOKENS = [
    "input", "layers", ":", ": ", " ", "\n", "  ", "- ", "[", "]", "{", "}", ",", "&a", "*a", "!!", "!!str", "!!binary",
    "!!python/object:os.system", "!!set", "!!omap", "|", ">", "?", "'", '"', "#", "%YAML 1.1\n", "%TAG ! x\n", "---",
    "...", "<<", "Conv2d", "ReLU", "Repeat", "Residual", "Save", "Add", "Concat", "times", "body", "with", "1", "3",
    "-1", ".inf", ".nan", "0x_", "1:00", "010", "yes", "~", "null", "@", "`", "\t", "\\", "\ufeff", "\x00",
]  # fmt: skip
JUNK_KINDS = ["bytes", "text", "YAML soup", "mutated example", "deep nesting", "alias bomb"]


@st.composite
def junk_files(draw: st.DrawFn) -> str | bytes:
    """What a stack file should not be: bytes, any text, YAML's own syntax at random, an example file mutated,
    nesting of any depth, aliases that repeat aliases."""
    kind = draw(st.sampled_from(JUNK_KINDS))
    event(f"junk: {kind}")
    if kind == "bytes":
        return draw(st.binary(max_size=400))
    if kind == "text":
        return draw(st.text(max_size=400))
    if kind == "YAML soup":
        return "".join(draw(st.lists(st.sampled_from(YAML_TOKENS), max_size=80)))
    if kind == "mutated example":
        text = Path(draw(st.sampled_from(QUICK_EXAMPLES))).read_text(encoding="utf-8")
        for _ in range(draw(st.integers(1, 4))):
            start = draw(st.integers(0, len(text)))
            end = draw(st.integers(start, min(len(text), start + 40)))
            how = draw(st.sampled_from(["delete", "repeat", "insert", "replace"]))
            piece = draw(st.one_of(st.sampled_from(YAML_TOKENS), st.text(max_size=5), integer_texts(), yaml_floats()))
            text = {"delete": text[:start] + text[end:], "repeat": text[:end] + text[start:end] * 3 + text[end:],
                    "insert": text[:start] + piece + text[start:],
                    "replace": text[:start] + piece + text[end:]}[how]  # fmt: skip
        return text
    if kind == "deep nesting":
        depth = draw(st.one_of(st.integers(1, 200), st.integers(200, 30_000)))
        opener, closer = draw(st.sampled_from([("[", "]"), ("{a: ", "}"), ("- ", ""), ("[{a: ", "}]")]))
        body = opener * depth + "1" + closer * depth
        return draw(st.sampled_from([f"input: {body}\nlayers: []\n", f"input: [1, 3, 8, 8]\nlayers: {body}\n", body]))
    levels, fanout = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    lines = ["input: [1, 3, 8, 8]", "anchors:", "  - &a0 [ReLU]"]
    for level in range(1, levels + 1):
        lines.append(f"  - &a{level} [{', '.join([f'*a{level - 1}'] * fanout)}]")
    lines.append(f"layers: *a{draw(st.integers(0, levels))}" if draw(st.booleans()) else "layers: &s [*s]")
    return "\n".join(lines[:1] + lines[3:] if draw(st.booleans()) else lines) + "\n"


@fuzz("junk")
@given(text=junk_files(), run=st.sampled_from(STACK_RUNS))
def test_junk_files(text: str | bytes, run: tuple[tuple[str, ...], str]) -> None:
    args, form = run
    check(invoke(list(args), text), shown(args, text), form)


# --- 5: draw -o into every kind of file -----------------------------------------------------------------------

TARGETS = ["new file", "existing file", "symlink to a file", "dangling symlink", "directory", "symlink to a directory",
           "FIFO", "FIFO with no reader", "/dev/null", "Unix socket", "missing folder", "empty name", "-"]  # fmt: skip


def _kind(path: str) -> tuple[str, int, int]:
    """What a path is, without following a symlink: its type, device and inode."""
    info = os.lstat(path)
    return stat.S_IFMT(info.st_mode), info.st_rdev, info.st_ino


def _tree(folder: str) -> set[str]:
    return {os.path.relpath(os.path.join(top, name), folder) for top, dirs, files in os.walk(folder)
            for name in dirs + files}  # fmt: skip


@fuzz("output_targets")
@given(
    target=st.sampled_from(TARGETS),
    name=file_names(),
    mode=st.integers(0, 0o7777),
    title=st.one_of(st.none(), hostile_texts("argv")),
    source=st.sampled_from(QUICK_EXAMPLES),
)
def test_draw_into_every_kind_of_file(target: str, name: str, mode: int, title: str | None, source: str) -> None:
    event(f"target: {target}")
    with tempfile.TemporaryDirectory(prefix="f") as folder:
        inner = os.path.join(folder, "sub")
        os.mkdir(inner)
        assume(name not in ("sub", "sock"))
        path = os.path.join(folder, name)
        pointed = os.path.join(inner, "target.svg")
        server: socket.socket | None = None
        received: list[bytes] = []
        reader: threading.Thread | None = None
        holder: int | None = None
        if target == "existing file":
            Path(path).write_text("old")
            os.chmod(path, mode)
        elif target == "symlink to a file":
            Path(pointed).write_text("old")
            os.chmod(pointed, mode)
            os.symlink(pointed, path)
        elif target == "dangling symlink":
            os.symlink(pointed, path)
        elif target == "directory":
            os.mkdir(path)
        elif target == "symlink to a directory":
            os.symlink(inner, path)
        elif target == "FIFO":  # with a reader there before convcalc opens it, and our own writer holding it open
            os.mkfifo(path)
            read_end = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            holder = os.open(path, os.O_WRONLY)
            os.set_blocking(read_end, True)

            def drain() -> None:
                with os.fdopen(read_end, "rb") as fifo:
                    received.append(fifo.read())

            reader = threading.Thread(target=drain, daemon=True)
            reader.start()
        elif target == "FIFO with no reader":
            os.mkfifo(path)
        elif target == "/dev/null":
            path = "/dev/null"
        elif target == "Unix socket":
            path = os.path.join(folder, "sock")  # AF_UNIX paths are at most 107 bytes
            server = socket.socket(socket.AF_UNIX)
            server.bind(os.fsencode(path))
        elif target == "missing folder":
            path = os.path.join(folder, "missing", name)
        elif target == "empty name":
            path = ""
        elif target == "-":
            path = "-"
        before_tree = _tree(folder)
        before = _kind(path) if os.path.lexists(path) else None
        old_mode = stat.S_IMODE(os.stat(path).st_mode) if os.path.isfile(path) else 0
        umask = os.umask(0)
        os.umask(umask)

        args = ["draw", source, "-o", path] + ([] if title is None else ["--title", title])
        what = shown(args) + f"  ({target})"
        try:
            result = invoke(args)
        finally:
            if holder is not None:  # the reader sees the end of what convcalc wrote
                os.close(holder)
            if reader is not None:
                reader.join(timeout=10)
            if server is not None:
                server.close()
        check(result, what, "svg" if target == "-" else None)

        code, stderr = result.exit_code, result.stderr
        expected_codes = {"directory": (1, 2), "symlink to a directory": (1, 2), "Unix socket": (1,),
                          "FIFO with no reader": (1,),
                          "missing folder": (1,), "empty name": (2,), "dangling symlink": (0, 1)}  # fmt: skip
        assert code in expected_codes.get(target, (0,)), f"exit {code}: {what}\n{stderr}"
        if target in ("new file", "existing file"):
            assert stat.S_ISREG(os.lstat(path).st_mode), what
            assert_svg(Path(path).read_bytes(), what)
        if target in ("symlink to a file", "dangling symlink"):
            assert os.path.islink(path) and os.readlink(path) == pointed, f"the link is gone: {what}"
            if code == 0:
                assert_svg(Path(pointed).read_bytes(), what)
        if target in ("directory", "symlink to a directory"):
            assert "directory" in stderr, f"{what}\n{stderr}"
            assert os.path.isdir(path) and os.listdir(path) == [], what
        if target == "FIFO":
            assert reader is not None and not reader.is_alive(), f"the FIFO's reader still waits: {what}"
            assert_svg(received[0], what)
        if target == "missing folder":
            assert not os.path.exists(os.path.dirname(path)), f"the missing folder was made: {what}"
        if before is not None:
            after = _kind(path)
            if not stat.S_ISREG(before[0]):
                assert after == before, f"{path!r} was {before}, is {after}: {what}"
        made = _tree(folder) - before_tree
        allowed = {os.path.relpath(path, folder)} if target == "new file" else set()
        if target == "dangling symlink" and code == 0:
            allowed = {os.path.relpath(pointed, folder)}
        assert made <= allowed, f"left behind: {sorted(made - allowed)}: {what}"
        assert not [entry for entry in _tree(folder) if os.path.basename(entry).startswith(".convcalc-")
                    and entry not in allowed], f"a temporary file is left: {what}"  # fmt: skip
        if target in ("new file", "existing file", "symlink to a file"):
            written = os.stat(path).st_mode
            wanted = 0o666 & ~umask if target == "new file" else old_mode
            assert stat.S_IMODE(written) == wanted, f"mode {stat.S_IMODE(written):o}, was {wanted:o}: {what}"


# --- 4: streams, encodings and signals, in real processes -----------------------------------------------------


def process(args: list[str], *, stdin: bytes | None = None, env: dict[str, str] | None = None,
            **kwargs: Any) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    options: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kwargs}
    if stdin is not None:
        options["input"] = stdin
    elif "stdin" not in options:
        options["stdin"] = subprocess.DEVNULL
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONIOENCODING", "COLUMNS")}
    environment.update(env or {})
    try:
        return subprocess.run([*CONVCALC, *args], env=environment, timeout=TIMEOUT, check=False, **options)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"hung for {TIMEOUT} s: {shown(args, stdin)}") from None


def _decoded(data: bytes | None, what: str) -> str:
    try:
        return (data or b"").decode("utf-8")
    except UnicodeDecodeError as error:
        raise AssertionError(f"output that is not UTF-8 ({error}): {what}") from None


INVALID_UTF8 = [b"\xff", b"\xfe\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\x80", b"\xf4\x90\x80\x80",
                b"\xf8\x88\x80\x80\x80"]  # fmt: skip
"""Byte sequences that are not UTF-8: invalid bytes, overlong, an encoded surrogate, truncated, a stray
continuation byte, beyond U+10FFFF, five bytes long."""


@st.composite
def not_utf8(draw: st.DrawFn) -> bytes:
    """A stack file that is not UTF-8: a generated stack with bytes that are not UTF-8 somewhere, or in another
    encoding altogether."""
    text = to_yaml(draw, draw(stacks(strings=True)))
    how = draw(st.sampled_from(["bytes inserted", "latin-1", "UTF-16"]))
    event(f"stdin: {how}")
    if how == "latin-1":
        return (text + "  - Save: caf\xe9\n").encode("latin-1", "replace")
    if how == "UTF-16":
        return text.encode("utf-16")
    data = text.encode("utf-8", "surrogatepass")
    cut = draw(st.integers(0, len(data)))
    return data[:cut] + draw(st.sampled_from(INVALID_UTF8)) + draw(st.binary(max_size=20)) + data[cut:]


WRITERS = ["conv", "stack", "fit", "draw"]


@st.composite
def writing_command_lines(draw: st.DrawFn, kind: str) -> list[str]:
    """A command of ``kind`` that succeeds and writes to standard output, in any output form."""
    if kind == "conv":
        return ["conv", str(draw(st.integers(8, 300))), "--k", "3", *draw(st.sampled_from([[], ["--json"], ["-q"]]))]
    if kind == "fit":
        return ["fit", draw(st.sampled_from(QUICK_EXAMPLES)), *draw(st.sampled_from([[], ["--json"]]))]
    if kind == "draw":
        return ["draw", draw(st.sampled_from(EXAMPLES))]
    forms = [[], ["--json"], ["--csv"], ["--markdown"], ["-q"], ["--emit", "torch"], ["--explain"]]
    return ["stack", draw(st.sampled_from(EXAMPLES)), *draw(st.sampled_from(forms))]


READERS = ["stack", "stack --emit torch", "fit", "draw"]


def _close_fd(fd: int) -> Any:
    return lambda: os.close(fd)


@pytest.mark.parametrize("case", ["stdin closed", "stdin not UTF-8"])
@pytest.mark.parametrize("reader", READERS)
@fuzz("streams")
@given(data=st.data())
def test_odd_input_streams(case: str, reader: str, data: st.DataObject) -> None:
    """Standard input closed (``<&-``) or not UTF-8: one Error line that says so, exit 1."""
    command, *flags = reader.split()
    args = [command, "-", *flags]
    stdin = data.draw(not_utf8()) if case == "stdin not UTF-8" else None
    kwargs: dict[str, Any] = {"preexec_fn": _close_fd(0)} if stdin is None else {}
    result = process(args, stdin=stdin, **kwargs)
    what = f"{shown(args, stdin)}  ({case})"
    stdout, stderr = _decoded(result.stdout, what), _decoded(result.stderr, what)
    assert_outcome(result.returncode, stdout, stderr, what)
    assert result.returncode == 1, f"exit {result.returncode}: {what}"
    wanted = "closed" if stdin is None else "UTF-8"
    assert wanted in stderr, f"the Error line does not say the input is {wanted}: {what}\n{stderr}"


@pytest.mark.parametrize(
    "case", ["stdout closed", "stdout full", "stdout a closed pipe", "stdout closed while writing"]
)
@pytest.mark.parametrize("kind", WRITERS)
@fuzz("streams")
@given(data=st.data())
def test_odd_output_streams(case: str, kind: str, data: st.DataObject) -> None:
    """Standard output closed (``>&-``) or full (``>/dev/full``): one Error line, exit 1; a pipe whose reader
    is gone, before or while convcalc writes: quietly, exit 141 (or 0 where all was written first)."""
    args = data.draw(writing_command_lines(kind))
    baseline = invoke(args)
    assert baseline.exit_code == 0 and baseline.stdout_bytes, f"{shown(args)} writes nothing: {baseline.stderr}"
    what = f"{shown(args)}  ({case})"
    if case == "stdout closed":
        result = process(args, stdout=None, preexec_fn=_close_fd(1))
    elif case == "stdout full":
        with open("/dev/full", "wb") as full:
            result = process(args, stdout=full)
    elif case == "stdout a closed pipe":
        reader, writer = os.pipe()
        os.close(reader)
        try:
            result = process(args, stdout=writer)
        finally:
            os.close(writer)
    else:
        limit = data.draw(st.integers(0, 100_000))
        child = subprocess.Popen([*CONVCALC, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 stdin=subprocess.DEVNULL)  # fmt: skip
        assert child.stdout is not None and child.stderr is not None
        child.stdout.read(limit)
        child.stdout.close()
        try:
            err = child.stderr.read()
            code = child.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            raise AssertionError(f"hung: {what}") from None
        result = subprocess.CompletedProcess(args, code, b"", err)
        what += f" after {limit} bytes"
    stderr = _decoded(result.stderr, what)
    if case in ("stdout a closed pipe", "stdout closed while writing"):
        assert_outcome(result.returncode, "", stderr, what, allowed=(0, 141))
        if case == "stdout a closed pipe":
            assert result.returncode == 141, f"exit {result.returncode}: {what}"
        assert result.returncode == 0 or stderr == "", f"a closed pipe is not quiet: {what}\n{stderr}"
    else:
        assert_outcome(result.returncode, "", stderr, what)
        assert result.returncode == 1, f"exit {result.returncode}: {what}"
        assert "standard output" in stderr, f"the Error line does not say standard output: {what}\n{stderr}"


ENCODINGS = {"latin-1": "latin-1", "cp1252": "cp1252", "ascii": "utf-8"}
"""Each PYTHONIOENCODING and the encoding convcalc's text output must then be in: click takes an ASCII stream
for a misconfigured locale and writes UTF-8 to it (click._compat._stream_is_misconfigured), on purpose."""


ENCODED_RUNS = {"table": ("stack", "-"), "markdown": ("stack", "-", "--markdown"),
                "torch": ("stack", "-", "--emit", "torch"), "svg": ("draw", "-")}  # fmt: skip


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("form", sorted(ENCODED_RUNS))
@fuzz("encodings")
@given(
    data=st.data(),
    wide=st.text(st.characters(categories=["L"], min_codepoint=0xA0), min_size=1, max_size=4),
    columns=st.one_of(integer_texts(1, 300, small=1), hostile_texts("argv")),
)
def test_narrow_output_encodings_and_junk_columns(encoding: str, form: str, data: st.DataObject, wide: str,
                                                  columns: str) -> None:  # fmt: skip
    """Names in letters beyond ASCII (some the encoding holds, some not) never crash a run, and the output is
    text of that encoding; emitted Python is still Python, SVG still UTF-8 XML."""
    names = [Name(wide + data.draw(hostile_texts("file"))), Name(wide)]
    stack = data.draw(runnable_stacks(names))
    stack["layers"].insert(0, {"Save": names[1]})
    text = to_yaml(data.draw, stack)
    args = ENCODED_RUNS[form]
    if form == "svg":
        args = (*args, "--title", wide + data.draw(hostile_texts("argv")))
    env = {"PYTHONIOENCODING": encoding, "COLUMNS": columns}
    result = process(list(args), stdin=text.encode("utf-8", "surrogatepass"), env=env)
    what = f"{shown(args, text)}  (PYTHONIOENCODING={encoding}, COLUMNS={columns!r})"
    expected = ENCODINGS[encoding]
    try:
        stdout = result.stdout.decode("utf-8" if form == "svg" else expected)
        stderr = result.stderr.decode(expected)
    except UnicodeDecodeError as error:
        raise AssertionError(f"output that is not {expected} ({error}): {what}") from None
    assert_outcome(result.returncode, stdout, stderr, what)
    event(f"exit {result.returncode}")
    partial = result.returncode == 1 and form == "markdown" and stdout.strip()
    if result.returncode == 0 or partial:
        assert_form(form, stdout, result.stdout, what)


def _long_stack(layers: int) -> bytes:
    rows = "".join(f"  - Conv2d: {{out_channels: {4 + i % 97}, kernel_size: 1}}\n" for i in range(layers))
    return f"input: [1, 3, 8, 8]\nlayers:\n{rows}".encode()


LONG_STACK = _long_stack(40_000)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@fuzz("signals")
@given(delay=st.floats(0, 2.0), output=st.sampled_from([None, "-q", "--json", "draw"]))
def test_signals_in_the_middle_of_the_work(signum: int, code: int, delay: float, output: str | None) -> None:
    """SIGINT or SIGTERM at any moment of a long run: the run ends quietly with 130 or 143 (or 0, done first);
    an output file is the old one or the whole new one, and no temporary file is left."""
    with tempfile.TemporaryDirectory() as folder:
        target = os.path.join(folder, "net.svg")
        Path(target).write_text("old")
        args = ["draw", "-", "-o", target] if output == "draw" else ["stack", "-", *([output] if output else [])]
        what = f"{shown(args)} <<< (40,000 layers), {signal.Signals(signum).name} after {delay:.2f} s"
        child = subprocess.Popen([*CONVCALC, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)  # fmt: skip
        assert child.stdin is not None
        drained: list[bytes] = []
        assert child.stdout is not None
        out_reader = threading.Thread(target=lambda: drained.append(child.stdout.read()), daemon=True)  # type: ignore[union-attr]
        out_reader.start()
        with contextlib.suppress(BrokenPipeError):
            child.stdin.write(LONG_STACK)  # returns once convcalc reads it: its handlers are in place by then
            child.stdin.close()
        time.sleep(delay)
        child.send_signal(signum)
        try:
            err = child.stderr.read() if child.stderr is not None else b""
            returncode = child.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            raise AssertionError(f"hung: {what}") from None
        out_reader.join(timeout=TIMEOUT)
        event(f"signal: exit {returncode}")
        # -signum: the signal itself ended the run, as it does once Python is shutting down after the last output
        # (Python puts back the default handlers); a shell reports that as 128 + signum too
        assert_outcome(returncode, "", _decoded(err, what), what, allowed=(0, code, -signum))
        if output == "draw":
            content = Path(target).read_bytes()
            if content != b"old":
                assert_svg(content, what)
            assert os.listdir(folder) == ["net.svg"], f"left behind: {os.listdir(folder)}: {what}"
