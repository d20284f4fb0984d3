"""A small regular-expression matcher that runs in linear time.

``matches`` takes its pattern from metadata and its text from users, so a pattern
must never be able to take the server hostage. Python's :mod:`re` backtracks, and a
pattern as short as ``(a+)+$`` takes exponential time on ``"aaaa…b"``; refusing
backreferences and lookarounds would not prevent that. This module therefore
compiles the pattern to a Thompson automaton and runs it as a lazily built DFA (Russ
Cox, "Regular Expression Matching Can Be Simple And Fast",
https://swtch.com/~rsc/regexp/regexp1.html): every character of the text is looked
at once, whatever the pattern.

A DFA state is a set of automaton steps held as the bits of an integer, so reading
a character is a few integer operations however large the pattern, and a state
weighs the same whatever it holds. A search reaches at most one new state per
character (``[ab]*a[ab]{999}$``, which remembers where each of the last thousand
``a`` was, does on a random text); what adds up is building them, which follows
the steps that read nothing (splits, jumps, assertions), hundreds per state for a
repeat that keeps hundreds of choices open such as ``.{0,999}x``. A search may
follow at most ``MAX_SEARCH_STEPS`` of those and is refused past that. States an
earlier search left in the cache are charged as if built again, so whether a
search is refused depends on the pattern and the text alone; the cache keeps at
most ``_MAX_CACHED_STATES`` states per pattern.

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
import itertools
from dataclasses import dataclass, field
from typing import Any

MAX_PATTERN_LENGTH = 500
MAX_TEXT_LENGTH = 32_000
MAX_PROGRAM_SIZE = 2_000
MAX_REPEAT = 1_000
MAX_SEARCH_STEPS = 500_000
_MAX_CACHED_STATES = 512
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
        while True:
            char = self.peek()
            if char is None:
                raise self.fail("Missing ']'")
            if char == "]":
                # Also first in the class: JavaScript reads "[]" as a class of
                # nothing and "[^]" as any character, where Python would take
                # the "]" as a member.
                self.pos += 1
                break
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


def _bits(mask: int) -> list[int]:
    """The indexes of the bits set in ``mask``, lowest first."""
    if mask.bit_count() > 32:
        # Reading the binary digits costs the same for any number of bits set;
        # peeling off the lowest bit costs per bit, which is cheaper for a few.
        digits = bin(mask)[:1:-1].encode().replace(b"0", b"\0")
        return list(itertools.compress(range(len(digits)), digits))
    found = []
    while mask:
        lowest = mask & -mask
        found.append(lowest.bit_length() - 1)
        mask ^= lowest
    return found


class _State:
    """A DFA state: the automaton steps that read the next character.

    ``chars`` holds those steps as the bits of a mask. ``size`` counts the steps
    that read nothing which building the state followed: what a search that
    reaches the state is charged. States never change once built, so searches and
    threads share them.
    """

    __slots__ = ("chars", "matched", "size")

    def __init__(self, chars: int, matched: bool, size: int) -> None:
        self.chars = chars
        self.matched = matched
        self.size = size


class _Visit:
    """A state as one search reached it, and the visits that followed it."""

    __slots__ = ("next", "state")

    def __init__(self, state: _State) -> None:
        self.state = state
        # Keyed by the character read, with the context after it if the pattern
        # has assertions: most characters of a text take a way already known.
        self.next: dict[Any, _Visit] = {}


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
        reading = sum(
            1 << index for index, step in enumerate(self._program) if step[0] == _CHAR
        )
        self._reading = reading
        self._skipping = ((1 << len(self._program)) - 1) ^ reading
        self._starts, self._accepts = _classes(self._program)
        self._states: dict[tuple[int, int], _State] = {}

    def search(self, text: str) -> bool:
        """Whether the pattern occurs anywhere in ``text``.

        Time and memory are bounded whatever the pattern and the text: the search
        reaches at most one new state per character, and building the states it
        reaches may follow at most ``MAX_SEARCH_STEPS`` steps that read nothing.

        :raises PatternError: when the text is longer than ``MAX_TEXT_LENGTH``, or
            searching it would follow more than ``MAX_SEARCH_STEPS`` steps.
        """
        if len(text) > MAX_TEXT_LENGTH:
            raise PatternError(f"The text is longer than {MAX_TEXT_LENGTH} characters.")
        if len(self._states) >= _MAX_CACHED_STATES:
            # Start a fresh cache rather than clearing this one, which another
            # thread may be reading.
            self._states = {}
        return _Search(self, text).run()

    def _context(self, text: str, position: int) -> int:
        context = 0
        if self._needs_edges:
            context |= (position == 0) | (position == len(text)) << 1
        if self._needs_words:
            before = position > 0 and _is_word(text[position - 1])
            after = position < len(text) and _is_word(text[position])
            context |= before << 2 | after << 3
        return context

    def _accepting(self, char: str) -> int:
        """The steps that read ``char``, as a mask."""
        return self._accepts[bisect.bisect_right(self._starts, ord(char)) - 1]

    def _state(self, kernel: int, context: int) -> _State:
        states = self._states
        state = states.get((kernel, context))
        if state is None:
            state = self._closure(kernel, context)
            if len(states) < _MAX_CACHED_STATES:
                states[(kernel, context)] = state
        return state

    def _closure(self, kernel: int, context: int) -> _State:
        program = self._program
        chars = kernel & self._reading
        # Program step 0 joins at every position: the pattern may start anywhere.
        pending = [0, *_bits(kernel & self._skipping)]
        seen: set[int] = set()
        matched = False
        while pending:
            index = pending.pop()
            step = program[index]
            kind = step[0]
            if kind == _CHAR:
                chars |= 1 << index
                continue
            if index in seen:
                continue
            seen.add(index)
            if kind == _SPLIT:
                pending.extend((step[2], step[1]))
            elif kind == _JUMP:
                pending.append(step[1])
            elif kind == _ASSERT:
                if self._holds(step[1], context):
                    pending.append(index + 1)
            else:
                matched = True
        return _State(chars, matched, len(seen))

    @staticmethod
    def _holds(kind: str, context: int) -> bool:
        at_start, at_end = bool(context & 1), bool(context & 2)
        boundary = bool(context & 4) != bool(context & 8)
        if kind == "^":
            return at_start
        if kind == "$":
            return at_end
        return boundary if kind == "b" else not boundary


def _classes(
    program: list[tuple[Any, ...]],
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Where the classes of characters that no step of ``program`` tells apart
    begin, and for each class the steps that read its characters, as a mask."""
    sets: dict[_CharSet, int] = {}
    for index, step in enumerate(program):
        if step[0] == _CHAR:
            sets[step[1]] = sets.get(step[1], 0) | 1 << index

    # Each range switches its steps on where it begins and off after it ends.
    switches: dict[int, int] = {0: 0}
    for charset, steps in sets.items():
        for low, high in charset.ranges:
            switches[low] = switches.get(low, 0) ^ steps
            switches[high + 1] = switches.get(high + 1, 0) ^ steps
    starts = sorted(point for point in switches if point <= _MAX_CODE_POINT)
    accepts = []
    steps = 0
    for point in starts:
        steps ^= switches[point]
        accepts.append(steps)
    return tuple(starts), tuple(accepts)


class _Search:
    """One search of one text: the states it reached and the steps it spent.

    A state is charged the first time the search reaches it, whether or not an
    earlier search left it in the cache.
    """

    def __init__(self, pattern: Pattern, text: str) -> None:
        self.pattern = pattern
        self.text = text
        self.spent = 0
        self.visits: dict[tuple[int, int], _Visit] = {}

    def run(self) -> bool:
        pattern, text = self.pattern, self.text
        contextual = pattern._needs_edges or pattern._needs_words
        visit = self.visit(0, pattern._context(text, 0))
        context = 0
        key: Any
        for position, char in enumerate(text):
            if visit.state.matched:
                return True
            if contextual:
                context = pattern._context(text, position + 1)
                key = (char, context)
            else:
                key = char
            following = visit.next.get(key)
            if following is None:
                following = visit.next[key] = self.advance(visit, char, context)
            visit = following
        return visit.state.matched

    def advance(self, visit: _Visit, char: str, context: int) -> _Visit:
        # Each step that reads the character leads to the step after it.
        accepting = self.pattern._accepting(char)
        return self.visit((visit.state.chars & accepting) << 1, context)

    def visit(self, kernel: int, context: int) -> _Visit:
        visit = self.visits.get((kernel, context))
        if visit is None:
            state = self.pattern._state(kernel, context)
            self.charge(state.size)
            visit = self.visits[(kernel, context)] = _Visit(state)
        return visit

    def charge(self, steps: int) -> None:
        self.spent += steps
        if self.spent > MAX_SEARCH_STEPS:
            raise PatternError(
                f"The pattern would take more than {MAX_SEARCH_STEPS} steps "
                f"to search this text."
            )


def _digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also takes superscripts and other scripts'
    digits, which JavaScript reads as literal text and ``int`` may refuse."""
    return text.isascii() and text.isdigit()
