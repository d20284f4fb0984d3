"""A small regular-expression matcher that runs in linear time.

``matches`` takes its pattern from metadata and its text from users, so a pattern
must never be able to take the server hostage. Python's :mod:`re` backtracks, and a
pattern as short as ``(a+)+$`` takes exponential time on ``"aaaa…b"``; refusing
backreferences and lookarounds would not prevent that. This module therefore
compiles the pattern to a Thompson automaton and runs it as a lazily built DFA (Russ
Cox, "Regular Expression Matching Can Be Simple And Fast",
https://swtch.com/~rsc/regexp/regexp1.html): every character of the text is looked
at once, whatever the pattern.

The syntax is the common subset of JavaScript and Python, with JavaScript's
meanings so that the browser gives the same answers: literals, ``.``, classes
``[a-z]`` and ``[^…]``, ``\\d \\w \\s`` (ASCII digits and word characters) and their
negations, ``^ $ \\b \\B``, groups ``(…)`` ``(?:…)`` ``(?<name>…)``, alternation
and the quantifiers ``* + ? {n} {n,} {n,m}`` (a trailing ``?`` is accepted and
changes nothing, since only *whether* the text matches is asked). Backreferences,
lookarounds and inline flags are refused. The pattern is searched for anywhere in
the text; anchor it with ``^…$`` to match the whole text.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

MAX_PATTERN_LENGTH = 500
MAX_TEXT_LENGTH = 32_000
MAX_PROGRAM_SIZE = 2_000
MAX_REPEAT = 1_000
_MAX_CACHE = 10_000
_MAX_CODE_POINT = 0x10FFFF

_DIGITS = ((0x30, 0x39),)
_WORD = ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A))
_SPACE = (
    (0x09, 0x0D),
    (0x20, 0x20),
    (0xA0, 0xA0),
    (0x1680, 0x1680),
    (0x2000, 0x200A),
    (0x2028, 0x2029),
    (0x202F, 0x202F),
    (0x205F, 0x205F),
    (0x3000, 0x3000),
    (0xFEFF, 0xFEFF),
)
_LINE_ENDS = ((0x0A, 0x0A), (0x0D, 0x0D), (0x2028, 0x2029))
_CONTROL_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "f": "\f", "v": "\v", "0": "\0"}


class PatternError(ValueError):
    """A pattern outside the supported syntax or above the size limits."""


def _normalize(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return tuple(merged)


def _complement(ranges: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    result: list[tuple[int, int]] = []
    start = 0
    for low, high in ranges:
        if low > start:
            result.append((start, low - 1))
        start = high + 1
    if start <= _MAX_CODE_POINT:
        result.append((start, _MAX_CODE_POINT))
    return tuple(result)


@dataclass(frozen=True)
class _CharSet:
    ranges: tuple[tuple[int, int], ...]
    starts: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "starts", tuple(low for low, _ in self.ranges))

    def __contains__(self, char: str) -> bool:
        point = ord(char)
        index = bisect.bisect_right(self.starts, point) - 1
        return index >= 0 and point <= self.ranges[index][1]


_ANY_BUT_LINE_END = _CharSet(_complement(_normalize(list(_LINE_ENDS))))

# AST nodes are tuples: ("set", _CharSet), ("cat", [..]), ("alt", [..]),
# ("repeat", node, low, high or None), ("assert", "^" | "$" | "b" | "B").
_Node = tuple


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.pos = 0

    def fail(self, message: str) -> PatternError:
        return PatternError(f"{message} (at position {self.pos} of the pattern).")

    def peek(self) -> str | None:
        return self.pattern[self.pos] if self.pos < len(self.pattern) else None

    def parse(self) -> _Node:
        node = self.alternation()
        if self.pos < len(self.pattern):
            raise self.fail("Unmatched ')'")
        return node

    def alternation(self) -> _Node:
        branches = [self.sequence()]
        while self.peek() == "|":
            self.pos += 1
            branches.append(self.sequence())
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def sequence(self) -> _Node:
        items: list[_Node] = []
        while (char := self.peek()) is not None and char not in "|)":
            items.append(self.quantified())
        return ("cat", items)

    def quantified(self) -> _Node:
        atom = self.atom()
        bounds = self.quantifier()
        if bounds is None:
            return atom
        if atom[0] == "assert":
            raise self.fail("Nothing to repeat")
        if self.peek() == "?":
            self.pos += 1
        if self.peek() in ("*", "+", "?") or self.quantifier_ahead():
            raise self.fail("Nothing to repeat")
        return ("repeat", atom, *bounds)

    def quantifier_ahead(self) -> bool:
        start = self.pos
        found = self.quantifier() is not None
        self.pos = start
        return found

    def quantifier(self) -> tuple[int, int | None] | None:
        char = self.peek()
        if char in ("*", "+", "?"):
            self.pos += 1
            return {"*": (0, None), "+": (1, None), "?": (0, 1)}[char]
        if char != "{":
            return None

        end = self.pattern.find("}", self.pos)
        body = self.pattern[self.pos + 1 : end] if end > 0 else ""
        low_text, comma, high_text = body.partition(",")
        if not _digits(low_text) or (high_text and not _digits(high_text)):
            # JavaScript reads a brace that starts no quantifier as a literal.
            return None
        low = int(low_text)
        high = int(high_text) if high_text else (None if comma else low)
        if low > MAX_REPEAT or (high is not None and (high > MAX_REPEAT or high < low)):
            raise self.fail(f"Repeat counts must be in order and at most {MAX_REPEAT}")
        self.pos = end + 1
        return low, high

    def atom(self) -> _Node:
        char = self.pattern[self.pos]
        self.pos += 1
        if char == "(":
            return self.group()
        if char in "*+?":
            raise self.fail("Nothing to repeat")
        if char == "^" or char == "$":
            return ("assert", char)
        if char == ".":
            return ("set", _ANY_BUT_LINE_END)
        if char == "[":
            return ("set", self.char_class())
        if char == "\\":
            return self.escape()
        return ("set", _CharSet(((ord(char), ord(char)),)))

    def group(self) -> _Node:
        if self.pattern.startswith("?", self.pos):
            if self.pattern.startswith("?:", self.pos):
                self.pos += 2
            elif self.pattern.startswith(
                "?<", self.pos
            ) and not self.pattern.startswith(("?<=", "?<!"), self.pos):
                end = self.pattern.find(">", self.pos)
                if end < 0 or not self.pattern[self.pos + 2 : end].isidentifier():
                    raise self.fail("Invalid group name")
                self.pos = end + 1
            else:
                raise self.fail("Lookarounds and inline flags are not supported")
        node = self.alternation()
        if self.peek() != ")":
            raise self.fail("Missing ')'")
        self.pos += 1
        return node

    def escape(self) -> _Node:
        if self.pos >= len(self.pattern):
            raise self.fail("The pattern ends with '\\'")
        char = self.pattern[self.pos]
        if char in "bB":
            self.pos += 1
            return ("assert", char)
        return ("set", _CharSet(_normalize(self.escape_ranges(in_class=False))))

    def escape_ranges(self, *, in_class: bool) -> list[tuple[int, int]]:
        char = self.pattern[self.pos]
        self.pos += 1
        classes = {"d": _DIGITS, "w": _WORD, "s": _SPACE}
        if char.lower() in classes:
            ranges = classes[char.lower()]
            return list(ranges if char.islower() else _complement(ranges))
        if char in _CONTROL_ESCAPES:
            if char == "0" and _digits(self.peek() or ""):
                raise self.fail("Octal escapes are not supported")
            point = ord(_CONTROL_ESCAPES[char])
        elif char == "b" and in_class:
            point = 0x08
        elif char in "xu":
            width = 2 if char == "x" else 4
            digits = self.pattern[self.pos : self.pos + width]
            if len(digits) != width or not all(
                d in "0123456789abcdefABCDEF" for d in digits
            ):
                raise self.fail(f"Invalid \\{char} escape")
            self.pos += width
            point = int(digits, 16)
        elif _digits(char) or char == "k":
            raise self.fail("Backreferences are not supported")
        elif char.isalnum() or char == "_":
            raise self.fail(f"Unknown escape \\{char}")
        else:
            point = ord(char)
        return [(point, point)]

    def char_class(self) -> _CharSet:
        negated = self.peek() == "^"
        if negated:
            self.pos += 1
        ranges: list[tuple[int, int]] = []
        first = True
        while True:
            char = self.peek()
            if char is None:
                raise self.fail("Missing ']'")
            if char == "]" and not first:
                self.pos += 1
                break
            first = False
            low = self.class_item()
            if self.peek() == "-" and self.pattern[self.pos + 1 : self.pos + 2] not in (
                "]",
                "",
            ):
                self.pos += 1
                high = self.class_item()
                if len(low) != 1 or len(high) != 1 or low[0][0] != low[0][1]:
                    raise self.fail("Invalid range in a character class")
                if high[0][0] != high[0][1] or high[0][0] < low[0][0]:
                    raise self.fail("Range out of order in a character class")
                ranges.append((low[0][0], high[0][0]))
            else:
                ranges.extend(low)
        normalized = _normalize(ranges)
        return _CharSet(_complement(normalized) if negated else normalized)

    def class_item(self) -> list[tuple[int, int]]:
        char = self.pattern[self.pos]
        self.pos += 1
        if char != "\\":
            return [(ord(char), ord(char))]
        if self.pos >= len(self.pattern):
            raise self.fail("The pattern ends with '\\'")
        return self.escape_ranges(in_class=True)


# Instructions: (_CHAR, set) (_SPLIT, x, y) (_JUMP, x) (_ASSERT, kind) (_MATCH,)
_CHAR, _SPLIT, _JUMP, _ASSERT, _MATCH = range(5)


class _Emitter:
    def __init__(self) -> None:
        self.program: list[list[Any]] = []

    def emit(self, *instruction: Any) -> int:
        if len(self.program) >= MAX_PROGRAM_SIZE:
            raise PatternError(
                f"The pattern is too large once its repeats are expanded "
                f"(more than {MAX_PROGRAM_SIZE} steps)."
            )
        self.program.append(list(instruction))
        return len(self.program) - 1

    def node(self, node: _Node) -> None:
        kind = node[0]
        if kind == "set":
            self.emit(_CHAR, node[1])
        elif kind == "assert":
            self.emit(_ASSERT, node[1])
        elif kind == "cat":
            for item in node[1]:
                self.node(item)
        elif kind == "alt":
            self.alternatives(node[1])
        else:
            self.repeat(node[1], node[2], node[3])

    def alternatives(self, branches: list[_Node]) -> None:
        jumps: list[int] = []
        for branch in branches[:-1]:
            split = self.emit(_SPLIT, 0, 0)
            self.program[split][1] = split + 1
            self.node(branch)
            jumps.append(self.emit(_JUMP, 0))
            self.program[split][2] = len(self.program)
        self.node(branches[-1])
        for jump in jumps:
            self.program[jump][1] = len(self.program)

    def repeat(self, node: _Node, low: int, high: int | None) -> None:
        for _ in range(low):
            self.node(node)
        if high is None:
            split = self.emit(_SPLIT, 0, 0)
            self.program[split][1] = split + 1
            self.node(node)
            self.emit(_JUMP, split)
            self.program[split][2] = len(self.program)
            return
        splits = []
        for _ in range(high - low):
            split = self.emit(_SPLIT, 0, 0)
            self.program[split][1] = split + 1
            splits.append(split)
            self.node(node)
        for split in splits:
            self.program[split][2] = len(self.program)


def _is_word(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char == "_")


class _State:
    """A DFA state: the automaton steps that read the next character.

    ``steps`` caches, per character, the steps that follow. States are never
    changed once built except by adding to that cache, so threads can share them.
    """

    __slots__ = ("chars", "matched", "steps")

    def __init__(self, chars: tuple[int, ...], matched: bool) -> None:
        self.chars = chars
        self.matched = matched
        self.steps: dict[str, frozenset[int]] = {}


class Pattern:
    """A compiled pattern; :meth:`search` says whether it occurs in a text."""

    def __init__(self, source: str) -> None:
        if len(source) > MAX_PATTERN_LENGTH:
            raise PatternError(
                f"The pattern is {len(source)} characters long; "
                f"at most {MAX_PATTERN_LENGTH} are allowed."
            )
        emitter = _Emitter()
        emitter.node(_Parser(source).parse())
        emitter.emit(_MATCH)
        self.source = source
        self._program: list[tuple[Any, ...]] = [
            tuple(instruction) for instruction in emitter.program
        ]
        kinds = {step[1] for step in self._program if step[0] == _ASSERT}
        self._needs_edges = bool(kinds & {"^", "$"})
        self._needs_words = bool(kinds & {"b", "B"})
        self._states: dict[tuple[frozenset[int], int], _State] = {}

    def search(self, text: str) -> bool:
        """Whether the pattern occurs anywhere in ``text``.

        :raises PatternError: when the text is longer than ``MAX_TEXT_LENGTH``.
        """
        if len(text) > MAX_TEXT_LENGTH:
            raise PatternError(f"The text is longer than {MAX_TEXT_LENGTH} characters.")
        states = self._states
        if len(states) > _MAX_CACHE:
            # Start a fresh cache rather than clearing this one, which another
            # thread may be reading.
            states = self._states = {}

        kernel: frozenset[int] = frozenset()
        last = len(text)
        for position in range(last + 1):
            context = self._context(text, position)
            state = states.get((kernel, context))
            if state is None:
                state = states[(kernel, context)] = self._closure(kernel, context)
            if state.matched:
                return True
            if position == last:
                return False
            char = text[position]
            following = state.steps.get(char)
            if following is None:
                following = self._step(state, char)
            kernel = following
        return False

    def _context(self, text: str, position: int) -> int:
        context = 0
        if self._needs_edges:
            context |= (position == 0) | (position == len(text)) << 1
        if self._needs_words:
            before = position > 0 and _is_word(text[position - 1])
            after = position < len(text) and _is_word(text[position])
            context |= before << 2 | after << 3
        return context

    def _closure(self, kernel: frozenset[int], context: int) -> _State:
        # Program step 0 joins at every position: the pattern may start anywhere.
        pending = [0, *kernel]
        seen: set[int] = set()
        chars: list[int] = []
        matched = False
        while pending:
            index = pending.pop()
            if index in seen:
                continue
            seen.add(index)
            step = self._program[index]
            kind = step[0]
            if kind == _CHAR:
                chars.append(index)
            elif kind == _SPLIT:
                pending.extend((step[2], step[1]))
            elif kind == _JUMP:
                pending.append(step[1])
            elif kind == _ASSERT:
                if self._holds(step[1], context):
                    pending.append(index + 1)
            else:
                matched = True
        return _State(tuple(sorted(chars)), matched)

    @staticmethod
    def _holds(kind: str, context: int) -> bool:
        at_start, at_end = bool(context & 1), bool(context & 2)
        boundary = bool(context & 4) != bool(context & 8)
        if kind == "^":
            return at_start
        if kind == "$":
            return at_end
        return boundary if kind == "b" else not boundary

    def _step(self, state: _State, char: str) -> frozenset[int]:
        program = self._program
        following = frozenset(
            index + 1 for index in state.chars if char in program[index][1]
        )
        if len(state.steps) < _MAX_CACHE:
            state.steps[char] = following
        return following


def _digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also takes superscripts and other scripts'
    digits, which JavaScript reads as literal text and ``int`` may refuse."""
    return text.isascii() and text.isdigit()
