"""reward.py - answer extraction and grading for RLVR (str in, float out; no torch, no vLLM).

Owns: `extract_answer` (last \\boxed{...} of a response), `is_equiv` (are two final answers the same
mathematical object?), `grade` (the paper's 0/1 outcome reward), `format_reward` (the format-only
ablation, paper Appendix C.2.3), `grade_batch` (called by the trainer once per step) and `stats()`.
Training and evaluation use this same grader.

Run:  python reward.py FILE.jsonl      # lines {"response": ..., "answer": ...}: accuracy, timeouts
      python reward.py --bench         # responses/s warm and cold, worst single-call latency

How a comparison is decided (cheapest first; the first three run in the caller, without sympy):
  1. normalise both strings (units, \\text, \\left, \\dfrac, $, degrees, %, unicode, ...) and
     compare them; cache by (pred, gold);
  2. split into structure - unordered solution lists, sets, tuples, intervals, unions, matrices,
     equations, inequalities, text, base-b numerals - and compare structure by structure;
  3. each leaf expression goes through our own LaTeX parser, then is evaluated exactly with
     Fractions (symbols, pi and e at fixed sample points), or else with floats to reject clear
     differences;
  4. only what is left (e.g. sin(pi/3) vs sqrt(3)/2) goes to a worker process: sympy translation
     and 60-digit evaluation, under a hard TIMEOUT_S wall-clock limit (the worker is SIGKILLed).

Deviations from the paper's graders (spec/eval.md §5-§7, spec/paper_run.md §3), all on purpose:
  * no tolerance: integers and decimals are compared exactly (14917 != 14916, 12.7 != 12.8,
    1.333 != 4/3); only float output with >= 15 significant digits gets a relative 1e-9;
  * no percentage x100 / /100 variants (7000 != 70 != 0.7); only an explicit percent sign on one side
    means value/100 (50\\% = 50 = ... and 50\\% = 0.5); commas are thousands separators only when the
    gold is a single number (1,2 != 12);
  * lists are unordered multisets (1,-2 = -2,1) and never equal their first element; \\pm expands;
  * interval brackets and inequality directions matter ((1,5] != [1,5), x<5 != x>5);
  * units are stripped only after a value, never letters inside an expression ((a+5)(b+2) keeps a);
  * \\pi is the constant; mixed numbers (1\\frac{4}{5} = 9/5), repeating decimals, scientific and
    e-notation, unicode look-alikes are understood; unreduced fractions are accepted (8/6 = 4/3);
  * the trainer passes the response only (the paper decoded prompt + response, eval.md §6).
"""
import atexit
import cmath
import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict, deque
from fractions import Fraction
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as _wait_conns


# ----------------------------------------------------------------------------------------------
# Extraction
# ----------------------------------------------------------------------------------------------

_BOX_COMMANDS = ("\\boxed", "\\fbox")


def extract_answer(response):
    """Content of the LAST \\boxed{...} / \\fbox{...} in `response`, or None.

    Brace-balanced (nested braces fine; \\{ and \\} are escaped and do not count). Also accepts
    `\\boxed {..}` and a brace-less `\\boxed 5` (the token up to whitespace, `$` or the end).
    None if there is no box or the last box is unclosed. One rfind and one forward scan: linear.
    """
    if not response:
        return None
    start, cmd = -1, ""
    for name in _BOX_COMMANDS:
        at = response.rfind(name)
        # `\boxed` must not be the prefix of a longer command name such as `\boxedx`.
        while at >= 0 and response[at + len(name):at + len(name) + 1].isalpha():
            at = response.rfind(name, 0, at)
        if at > start:
            start, cmd = at, name
    if start < 0:
        return None
    i, n = start + len(cmd), len(response)
    while i < n and response[i] in " \t\n":
        i += 1
    if i >= n:
        return None
    if response[i] != "{":
        # Brace-less form: `\boxed 5$` -> `5` (the paper's eval extractor does the same, eval.md §3).
        j = i
        while j < n and not response[j].isspace() and response[j] != "$":
            j += 1
        return response[i:j] if j > i else None
    depth, j = 0, i
    while j < n:
        ch = response[j]
        if ch == "\\":
            j += 2  # skip the escaped character: `\{`, `\}`, `\\`
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return response[i + 1:j].strip()
        j += 1
    return None


# ----------------------------------------------------------------------------------------------
# Normalisation: strings that mean the same thing become the same string (cheap, no sympy)
# ----------------------------------------------------------------------------------------------

def _build_unicode_map():
    m = {
        "\u2212": "-", "\u2013": "-", "\u2014": "-", "\u2010": "-", "\u2011": "-",
        "\u00d7": r" \times ", "\u00b7": r" \cdot ", "\u22c5": r" \cdot ", "\u2219": r" \cdot ",
        "\u00f7": r" \div ", "\u2264": r" \le ", "\u2265": r" \ge ", "\u2a7d": r" \le ",
        "\u2a7e": r" \ge ", "\u2260": r" \ne ", "\u2248": r" \approx ", "\u221e": r" \infty ",
        "\u03c0": r" \pi ", "\u00b0": r"^\circ ", "\u222a": r" \cup ", "\u2229": r" \cap ",
        "\u00b1": r" \pm ", "\u2213": r" \mp ", "\u2208": r" \in ", "\u2205": r" \emptyset ",
        "\u221a": r"\sqrt ", "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u3000": " ",
        "\u2026": r" \ldots ", "\u00bd": r"\frac{1}{2}", "\u00bc": r"\frac{1}{4}",
        "\u00be": r"\frac{3}{4}", "\u2153": r"\frac{1}{3}", "\u2154": r"\frac{2}{3}",
    }
    greek = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron".split()
    greek += "pi rho sigma sigma tau upsilon phi chi psi omega".split()  # final sigma at 0x3c2
    for k, name in enumerate(greek):
        if name not in ("omicron", "pi"):
            m[chr(0x3B1 + k)] = " \\%s " % name
    for c in range(0xFF01, 0xFF5F):  # full-width ASCII block -> ASCII
        m[chr(c)] = chr(c - 0xFEE0)
    return {ord(k): v for k, v in m.items()}


_UNICODE_MAP = _build_unicode_map()
_SUPERSCRIPTS = str.maketrans("\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079\u207b\u207a",
                              "0123456789-+")
_SUPER_RE = re.compile("[\u2070\u00b9\u00b2\u00b3\u2074-\u2079\u207b\u207a]+")
_RADICAL_RE = re.compile("\u221a\\s*(\\d+(?:\\.\\d+)?|[A-Za-z])")

# Trailing units after a value, e.g. `12.8 \text{ mph}`, `5 \text{cm}^2`, `864 \mbox{ inches}^2`.
# Only a wrapper that holds words, right after a digit / `}` / `)` / `\pi`, at the end of an item.
_UNIT_TEXT_RE = re.compile(
    r"(\d|\}|\)|\\pi)\s*\\(?:text|mbox|mathrm|textrm|textnormal|textit|mathit|hbox)\s*"
    r"\{\s*\(?([A-Za-z][A-Za-z ./\-]*?)\)?\s*\}(?:\s*\^\s*\{?\s*-?\d\s*\}?)?(?=\s*(?:[,;]|$))")
_UNIT_WORD = (r"(?:units?|mph|kph|kmph|km/h|m/s|cm|mm|km|kg|mg|lbs?|oz|ft|feet|foot|inch(?:es)?|"
              r"yards?|yd|miles?|mi|meters?|metres?|centimeters?|centimetres?|millimeters?|"
              r"kilometers?|kilometres?|seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|"
              r"months?|years?|degrees?|deg|radians?|rad|dollars?|cents?|percent|points?|"
              r"liters?|litres?|gallons?|grams?|kilograms?|pounds?|ounces?|people|persons?|"
              r"students?|ways|times|steps|moves)")
# Bare unit words (`12.8 mph`, `30 degrees`); never single letters, which may be variables.
_UNIT_BARE_RE = re.compile(
    r"(\d|\})\s*(?:(?:square|sq|cubic|cu)\s+)?" + _UNIT_WORD +
    r"(?:\s*(?:per|/)\s*" + _UNIT_WORD + r")?(?:\s*\^\s*\{?\s*\d\s*\}?)?(?=\s*(?:[,;]|$))",
    re.IGNORECASE)
# Any other trailing words after a number and a space: `5 apples`, `12 red marbles`.
_UNIT_NOUNS_RE = re.compile(r"(\d)\s+[A-Za-z]{3,}(?:\s+[A-Za-z]{3,})*(?=\s*(?:[,;]|$))")
_TEXT_CMD_RE = re.compile(
    r"\\(?:text|textbf|textit|textrm|textnormal|textsf|texttt|mbox|hbox|mathrm|mathbf|mathit|"
    r"mathsf|mathtt|mathnormal|operatorname|boldsymbol|bm|emph|boxed|fbox)\s*\{")
_SIZE_RE = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|Biggl|Biggr|bigg|Bigg|"
                      r"big|Big|middle)(?![a-zA-Z])\s*\.?")
_MIXED_FRAC_RE = re.compile(r"(?<![\w.}])(\d+)\s*\\frac\s*(?:\{(\d+)\}|(\d))\s*(?:\{(\d+)\}|(\d))(?![\w{^])")
_MIXED_SLASH_RE = re.compile(r"(?<![\w./])(\d+)\s+(\d+)\s*/\s*(\d+)(?![\w./^])")
_DEGREE_RE = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree")
_TRIG_RE = re.compile(r"\\(?:sin|cos|tan|cot|sec|csc)(?![a-zA-Z])")
# Relations and set operators become single characters so structure splitting is a char scan.
_REL_SUBS = [
    (re.compile(r"\\(?:leqslant|leq|le)(?![a-zA-Z])|<="), "\u2264"),
    (re.compile(r"\\(?:geqslant|geq|ge)(?![a-zA-Z])|>="), "\u2265"),
    (re.compile(r"\\(?:neq|ne)(?![a-zA-Z])|!="), "\u2260"),
    (re.compile(r"\\lt(?![a-zA-Z])"), "<"), (re.compile(r"\\gt(?![a-zA-Z])"), ">"),
    (re.compile(r"\\approx(?![a-zA-Z])"), "="),
    (re.compile(r"\\cup(?![a-zA-Z])"), "\u222a"), (re.compile(r"\\in(?![a-zA-Z])"), "\u2208"),
    (re.compile(r"\\pm(?![a-zA-Z])"), "\u00b1"), (re.compile(r"\\mp(?![a-zA-Z])"), "\u2213"),
]


def _mixed_number(m):
    """`1\\frac{4}{5}` and `7 3/4` are mixed numbers (the paper's eval read them as products,
    eval.md §7 item 9). Only proper fractions qualify: `2\\frac{5}{3}` stays a product."""
    if m.re is _MIXED_FRAC_RE:  # braced or TeX single-digit arguments: 1\frac{4}{5}, 1\frac45
        whole, num, den = m.group(1), int(m.group(2) or m.group(3)), int(m.group(4) or m.group(5))
    else:
        whole, num, den = m.group(1), int(m.group(2)), int(m.group(3))
    if not 0 < num < den:
        return m.group(0)
    return "(%s+\\frac{%d}{%d})" % (whole, num, den)


def _unit_text(m):
    word = m.group(2).strip()
    # `3+4\mathrm{i}` and `\mathrm{e}` are constants, not units.
    return m.group(0) if word in ("e", "i") else m.group(1)


def _unwrap_text(s):
    """`\\text{X}` -> ` X ` (and \\textbf, \\mathrm, \\mbox, ...), brace-balanced, inner first."""
    for _ in range(50):  # bound: each pass removes one wrapper
        m = _TEXT_CMD_RE.search(s)
        if not m:
            return s
        depth, j = 1, m.end()
        while j < len(s) and depth:
            depth += {"{": 1, "}": -1}.get(s[j], 0)
            j += 1
        s = s[:m.start()] + " " + s[m.end():j - 1] + " " + s[j:]
    return s


def _normalize(s, degrees_as_radians=False):
    """Canonical spelling of one final answer. Pure string work, linear time, no sympy.
    degrees_as_radians: read `60^\\circ` as 60*pi/180 (used when the other side is in radians)."""
    if not s.isascii():
        s = _RADICAL_RE.sub(r"\\sqrt{\1}", s)
        s = _SUPER_RE.sub(lambda m: "^{%s}" % m.group(0).translate(_SUPERSCRIPTS), s)
        s = s.translate(_UNICODE_MAP)
    s = s.replace("\n", " ").replace("\\\\", "\ue000")  # protect `\\` (matrix rows) from `\ ` etc.
    s = re.sub(r"[\s.,;:]+$", "", s)           # trailing period first: units are matched at the end
    s = _SIZE_RE.sub("", s)
    s = re.sub(r"\\[dtc]frac(?![a-zA-Z])", r"\\frac", s)
    s = re.sub(r"\\[dt]binom(?![a-zA-Z])", r"\\binom", s)
    s = re.sub(r"\\(?:displaystyle|textstyle|scriptstyle|limits|nolimits)(?![a-zA-Z])|\\!", "", s)
    s = s.replace("\\$", " ").replace("$", " ")
    s = re.sub(r"\\[()\[\]]", " ", s)
    # Digit-group separators `1{,}000`, `1\,000`, `1 000` -> `1,000`; `3{,}5` is a decimal comma.
    s = re.sub(r"(?<=\d)(?:\{,\}|\\,|\\ |\\;|~| )(?=\d{3}(?!\d))", ",", s)
    s = re.sub(r"(?<=\d)\{,\}(?=\d)", ".", s)
    s = re.sub(r"\\(?:,|;|:| |quad|qquad)|~", " ", s)
    s = _MIXED_FRAC_RE.sub(_mixed_number, s)
    s = _MIXED_SLASH_RE.sub(_mixed_number, s)
    # Degrees: stripped, except inside trig functions where they mean pi/180.
    s = _DEGREE_RE.sub(r"^{\\circ}" if degrees_as_radians or _TRIG_RE.search(s) else "", s)
    s = _UNIT_TEXT_RE.sub(_unit_text, s)
    s = _unwrap_text(s)
    s = _UNIT_BARE_RE.sub(r"\1", s)
    s = _UNIT_NOUNS_RE.sub(r"\1", s)
    s = re.sub(r"\s+(?:and|or)\s+", ",", s)
    s = s.replace("\\%", "").replace("%", "")
    s = re.sub(r"\\mathbb\s*\{?\s*R\s*\}?", r"(-\\infty,\\infty)", s)
    s = re.sub(r"\\(?:emptyset|varnothing)(?![a-zA-Z])|\\\{\s*\\\}", r"\\emptyset", s)
    s = re.sub(r"\\infin(?:ity)?(?![a-zA-Z])|(?<![\\a-zA-Z])(?:infinity|inf)(?![a-zA-Z])",
               r"\\infty", s)
    s = re.sub(r"\\lbrace(?![a-zA-Z])", r"\\{", s)
    s = re.sub(r"\\rbrace(?![a-zA-Z])", r"\\}", s)
    s = re.sub(r"\\langle(?![a-zA-Z])", "(", s)
    s = re.sub(r"\\rangle(?![a-zA-Z])", ")", s)
    s = re.sub(r"\\(?:lvert|rvert|vert|mid)(?![a-zA-Z])", "|", s)
    s = re.sub(r"\\ast(?![a-zA-Z])", "*", s)
    for pattern, char in _REL_SUBS:
        s = pattern.sub(char, s)
    s = re.sub(r"\s+", " ", s).strip().replace("\ue000", "\\\\")
    s = re.sub(r"^(?:=|:)\s*", "", s)          # `\approx 12.8`, `: 5`
    s = re.sub(r"[\s.,;:]+$", "", s)           # trailing period or comma
    return s


_KEY_SPACE_RE = re.compile(r"(?<![\d.])\s+|\s+(?![\d.])")


def _key(s):
    """Normalised string with spaces removed, except between two digits (`7 3` is not `73`)."""
    return _KEY_SPACE_RE.sub("", s)


# ----------------------------------------------------------------------------------------------
# LaTeX -> expression tree (our own recursive-descent parser; sympy's parse_latex needs antlr)
# Nodes are tuples: ('num', Fraction) ('sym', name) ('const', 'pi'|'e'|'i'|'oo') ('add', terms)
# ('mul', factors) ('neg', x) ('div', a, b) ('pow', a, b) ('root', x, n|None) ('fact', x)
# ('binom', n, k) ('fn', name, x) ('log', base|None, x)
# ----------------------------------------------------------------------------------------------

class _ParseError(Exception):
    pass


class _NotExact(Exception):
    """The exact (Fraction) evaluator cannot represent this value; use floats / sympy instead."""


class _TooBig(Exception):
    """A power or factorial too large to build (`10^{10^{10^{10}}}`): never evaluated."""


MAX_POW_BITS = 100_000   # largest exact number built, ~30k digits (big-int gcds stay ~ms)
MAX_FACTORIAL = 2000     # 2000! has 5736 digits
MAX_PARSE_DEPTH = 120    # nesting limit, well under Python's recursion limit

_NUM_RE = re.compile(r"\d+\.?\d*|\.\d+")
_EXP_RE = re.compile(r"[eE][+-]?\d+")
_REPEAT_RE = re.compile(r"(\d*)\.(\d*)\\overline\s*\{(\d+)\}")
_CMD_RE = re.compile(r"\\([a-zA-Z]+|.)")
_FUNCS = {"sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "arccot",
          "arcsec", "arccsc", "sinh", "cosh", "tanh", "coth", "ln", "log", "lg", "exp"}
_GREEK = set("alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda "
             "mu nu xi rho varrho sigma tau upsilon phi varphi chi psi omega Gamma Delta Theta "
             "Lambda Xi Sigma Upsilon Phi Psi Omega ell".split())
# Commands that must not silently become symbols: operators, delimiters, layout, sums/integrals.
_NOT_SYMBOLS = {"cdot", "times", "div", "right", "left", "rfloor", "rceil", "begin", "end", "sum",
                "prod", "int", "lim", "frac", "sqrt", "binom", "mod", "pmod", "bmod", "to", "ldots",
                "cdots", "dots", "vdots", "ddots", "cap", "setminus", "circ", "over", "choose",
                "quad", "qquad", "hline"}
_ATOM_CMDS = {"frac", "sqrt", "binom", "pi", "infty", "lfloor", "lceil"} | _FUNCS | _GREEK
_PI_OVER_180 = ("div", ("const", "pi"), ("num", Fraction(180)))


def _repeating(m):
    """`0.1\\overline{6}` -> 1/6 exactly."""
    whole, fixed, rep = m.group(1) or "0", m.group(2), m.group(3)
    base = Fraction(int(whole + fixed), 10 ** len(fixed))
    return base + Fraction(int(rep), (10 ** len(rep) - 1) * 10 ** len(fixed))


def _tokenize(s):
    """Tokens: ('num', text, Fraction) ('cmd', name) ('sym', letter) ('op', char)."""
    toks, i, n = [], 0, len(s)
    while i < n:
        c = s[i]
        if c.isspace():
            i += 1
        elif c.isdigit() or (c == "." and i + 1 < n and s[i + 1].isdigit()):
            m = _REPEAT_RE.match(s, i)
            if m:
                toks.append(("num", m.group(0), _repeating(m)))
                i = m.end()
                continue
            m = _NUM_RE.match(s, i)
            i = m.end()
            e = _EXP_RE.match(s, i)  # e-notation `4.5e33`, `1e-5` (Minerva golds); `3e^{x}` is Euler's e
            text = m.group(0) + (e.group(0) if e else "")
            if e and abs(int(e.group(0)[1:])) > 30_000:  # Fraction("1e999999999") would hang
                raise _TooBig("e-notation exponent")
            i = e.end() if e else i
            toks.append(("num", text, Fraction(text)))
        elif c == "\\":
            m = _CMD_RE.match(s, i)
            if not m:
                raise _ParseError("dangling backslash")
            toks.append(("cmd", m.group(1)))
            i = m.end()
        else:
            toks.append(("sym", c) if c.isalpha() else ("op", c))
            i += 1
    return toks


def _mul(factors):
    return factors[0] if len(factors) == 1 else ("mul", tuple(factors))


class _Parser:
    """expr := term (± term)*; term := factor ((\\cdot|*|/|implicit) factor)*;
    factor := ±factor | atom (^exponent | !)*. TeX single-token arguments for \\frac12, \\sqrt2."""

    def __init__(self, s):
        self.toks, self.pos, self.depth, self.abs_open = _tokenize(s), 0, 0, 0

    def peek(self, ahead=0):
        j = self.pos + ahead
        return self.toks[j] if j < len(self.toks) else ("end", None)

    def take(self):
        tok = self.peek()
        if tok[0] == "end":
            raise _ParseError("unexpected end")
        self.pos += 1
        return tok

    def expect_op(self, chars):
        tok = self.take()
        if tok[0] != "op" or tok[1] not in chars:
            raise _ParseError("expected %s" % chars)

    def parse(self):
        node = self.expr()
        if self.pos != len(self.toks):
            raise _ParseError("trailing tokens")
        return node

    def expr(self):
        self.depth += 1
        if self.depth > MAX_PARSE_DEPTH:
            raise _ParseError("too deep")
        terms = [self.term()]
        while self.peek()[0] == "op" and self.peek()[1] in "+-":
            sign = self.take()[1]
            term = self.term()
            terms.append(("neg", term) if sign == "-" else term)
        self.depth -= 1
        return terms[0] if len(terms) == 1 else ("add", tuple(terms))

    def starts_atom(self):
        kind, val = self.peek()[:2]
        if kind in ("num", "sym"):
            return True
        if kind == "op":
            return val in "([{" or (val == "|" and self.abs_open == 0)
        return kind == "cmd" and (val in _ATOM_CMDS or (val.isalpha() and val not in _NOT_SYMBOLS))

    def term(self):
        factors = [self.factor()]
        while True:
            kind, val = self.peek()[:2]
            if (kind == "cmd" and val in ("cdot", "times")) or (kind == "op" and val == "*"):
                self.take()
                factors.append(self.factor())
            elif (kind == "op" and val == "/") or (kind == "cmd" and val == "div"):
                self.take()
                factors = [("div", _mul(factors), self.factor())]
            elif self.starts_atom():
                factors.append(self.factor())  # implicit multiplication: 2x, (a+5)(b+2)
            else:
                return _mul(factors)

    def factor(self):
        if self.peek()[0] == "op" and self.peek()[1] in "+-":
            sign = self.take()[1]
            inner = self.factor()
            return ("neg", inner) if sign == "-" else inner
        node = self.atom()
        while self.peek()[0] == "op" and self.peek()[1] in "^!":
            if self.take()[1] == "!":
                node = ("fact", node)
            elif self.peek()[:2] == ("cmd", "circ"):
                self.take()
                node = ("mul", (node, _PI_OVER_180))
            elif self.peek()[:2] == ("op", "{") and self.peek(1)[:2] == ("cmd", "circ"):
                self.pos += 2
                self.expect_op("}")
                node = ("mul", (node, _PI_OVER_180))
            else:
                node = ("pow", node, self.exponent())
        return node

    def exponent(self):
        kind, val = self.peek()[:2]
        if kind == "op" and val in "+-":
            self.take()
            inner = self.exponent()
            return ("neg", inner) if val == "-" else inner
        if kind == "num":  # `10^10` means 10^{10} (intent), unlike TeX's 10^1 0
            return ("num", self.take()[2])
        if kind == "sym":
            return self.symbol(self.take()[1])
        return self.atom()

    def tex_arg(self):
        """One TeX argument: {group}, a single digit/letter, a command, or (intent) a (group)."""
        kind, val = self.peek()[:2]
        if kind == "op" and val in "{(":
            return self.atom()
        if kind == "num":
            text = self.peek()[1]
            if len(text) > 1 and text[0].isdigit():  # `\frac12` -> 1 and 2
                rest = text[1:]
                self.toks[self.pos] = ("num", rest, Fraction(rest))
                return ("num", Fraction(int(text[0])))
            return ("num", self.take()[2])
        if kind == "sym":
            return self.symbol(self.take()[1])
        if kind == "cmd":
            self.take()
            return self.command(val)
        raise _ParseError("bad argument")

    def subscript(self):
        """Text of a subscript: `_1`, `_{10}`, `_{red}` -> '1', '10', 'red'."""
        self.take()
        if self.peek()[:2] != ("op", "{"):
            return str(self.take()[1])
        self.take()
        parts = []
        while self.peek()[:2] != ("op", "}"):
            parts.append(str(self.take()[1]))
        self.take()
        return "".join(parts)

    def symbol(self, name):
        if self.peek()[:2] == ("op", "_"):
            return ("sym", name + "_" + self.subscript())
        if name in ("e", "i"):
            return ("const", name)
        return ("sym", name)

    def atom(self):
        self.depth += 1
        if self.depth > MAX_PARSE_DEPTH:
            raise _ParseError("too deep")
        tok = self.take()
        kind, val = tok[:2]
        if kind == "num":
            node = ("num", tok[2])
            if self.peek()[:2] == ("op", "_"):  # a numeral with a base subscript, 1011_2
                node = ("num", Fraction(_base_value(val, self.subscript())))
        elif kind == "sym":
            node = self.symbol(val)
        elif kind == "op" and val in "([":
            node = self.expr()
            self.expect_op(")]")
        elif kind == "op" and val == "{":
            node = self.expr()
            self.expect_op("}")
        elif kind == "op" and val == "|":
            self.abs_open += 1
            node = ("fn", "abs", self.expr())
            self.expect_op("|")
            self.abs_open -= 1
        elif kind == "cmd":
            node = self.command(val)
        else:
            raise _ParseError("unexpected %r" % (val,))
        self.depth -= 1
        return node

    def command(self, name):
        if name == "frac":
            return ("div", self.tex_arg(), self.tex_arg())
        if name == "sqrt":
            index = None
            if self.peek()[:2] == ("op", "["):
                self.take()
                index = self.expr()
                self.expect_op("]")
            return ("root", self.tex_arg(), index)
        if name == "binom":
            return ("binom", self.tex_arg(), self.tex_arg())
        if name == "pi":
            return ("const", "pi")
        if name == "infty":
            return ("const", "oo")
        if name in ("lfloor", "lceil"):
            inner = self.expr()
            closer = self.take()
            if closer[:2] != ("cmd", "r" + name[1:]):
                raise _ParseError("unclosed " + name)
            return ("fn", name[1:], inner)
        if name in _GREEK:
            return self.symbol(name)
        if name in _FUNCS:
            return self.function(name)
        if name.isalpha() and name not in _NOT_SYMBOLS:  # \hbar, \angle, \prime: opaque symbols
            return self.symbol(name)
        raise _ParseError("unknown command \\" + name)

    def function(self, name):
        base, power = None, None
        if name == "log" and self.peek()[:2] == ("op", "_"):
            self.take()
            base = self.tex_arg()
        if name == "lg":
            name, base = "log", ("num", Fraction(10))
        if self.peek()[:2] == ("op", "^"):
            self.take()
            power = self.exponent()
            if power == ("neg", ("num", Fraction(1))) and name in ("sin", "cos", "tan", "cot", "sec", "csc"):
                name, power = "arc" + name, None  # \sin^{-1} x is arcsin x
        if self.peek()[:2] in (("op", "("), ("op", "{")):
            arg = self.atom()
        else:  # `\sin 2x` = sin(2x); the argument stops at an operator or the next function
            factors = [self.factor()]
            while self.starts_atom() and not (self.peek()[0] == "cmd" and self.peek()[1] in _FUNCS):
                factors.append(self.factor())
            arg = _mul(factors)
        if name == "exp":
            node = ("pow", ("const", "e"), arg)
        elif name in ("ln", "log"):
            node = ("log", base, arg)
        else:
            node = ("fn", name, arg)
        return ("pow", node, power) if power is not None else node


def _base_value(digits, base_text):
    """Value of a numeral written in another base: `1112122_3`."""
    if not base_text.isdigit() or not 2 <= int(base_text) <= 36:
        raise _ParseError("bad base")
    try:
        return int(digits, int(base_text))
    except ValueError as exc:
        raise _ParseError("bad digit for base") from exc


def _parse_expr(s):
    try:
        return _Parser(s).parse()
    except RecursionError as exc:
        raise _ParseError("too deep") from exc


def _walk(node):
    """All nodes of a tree, iteratively."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        for child in n[1:]:
            if isinstance(child, tuple):
                if child and isinstance(child[0], str):
                    stack.append(child)
                else:
                    stack.extend(c for c in child if isinstance(c, tuple))


def _free_symbols(node):
    return {n[1] for n in _walk(node) if n[0] == "sym"}


def _has_const(node, name):
    return any(n[0] == "const" and n[1] == name for n in _walk(node))


# ----------------------------------------------------------------------------------------------
# Evaluation backends. Symbols are tested at fixed sample points (an identity test: two rational
# functions that agree at generic points are equal). pi and e are transcendental, so in the exact
# backend they may be treated as unknowns too; their sample points lie near the true values so
# that floor / abs / sign of an expression in pi come out as they would at pi.
# ----------------------------------------------------------------------------------------------

_SAMPLE_POINTS = [Fraction(1013, 727), Fraction(1811, 1153), Fraction(701, 1301), Fraction(2311, 941),
                  Fraction(1279, 1871), Fraction(3109, 1429), Fraction(887, 503), Fraction(1553, 2203),
                  Fraction(2707, 1117), Fraction(599, 433), Fraction(1931, 1601), Fraction(3001, 1097),
                  Fraction(1409, 977)]
_PI_POINTS = [Fraction(333, 106), Fraction(355, 113), Fraction(103993, 33102)]
_E_POINTS = [Fraction(19, 7), Fraction(87, 32), Fraction(193, 71)]
_N_POINTS = 3


_WIDE_SCALE = 41  # floor / ceil / factorials of small values hide differences: floor(m/2) = floor(m/6) at m < 2


def _sample_envs(names, exact, extra=()):
    """Sample points as dicts name -> value; names are sorted so both sides see the same point.
    Symbols are sampled positive (answers' variables are usually lengths and counts, so
    sqrt(4 pi r^2) = 2 r sqrt(pi)). extra: 'wide' adds points scaled by _WIDE_SCALE (for floor,
    ceil, factorials); 'negative' adds points with mixed signs (so |x| != x, |x|+|y| != |x+y|)."""
    kinds = ["plain"] + ["wide"] * ("wide" in extra) + ["negative"] * ("negative" in extra)
    envs = []
    for kind in kinds:
        for j in range(_N_POINTS):
            sign = lambda k: -1 if kind == "negative" and (k + j) % 2 == 0 else 1  # noqa: E731
            scale = _WIDE_SCALE if kind == "wide" else 1
            env = {name: sign(k) * scale * _SAMPLE_POINTS[(5 * k + j) % len(_SAMPLE_POINTS)]
                   for k, name in enumerate(names)}
            if exact:
                env["pi"], env["e"] = _PI_POINTS[j], _E_POINTS[j]
            envs.append(env)
    return envs


def _extra_points(*nodes):
    kinds = {(n[0], n[1] if n[0] == "fn" else None) for x in nodes for n in _walk(x)}
    wide = kinds & {("fact", None), ("binom", None), ("fn", "floor"), ("fn", "ceil")}
    return ("wide",) * bool(wide) + ("negative",) * (("fn", "abs") in kinds)


def _int_root(v, n):
    """Exact integer n-th root of v >= 0, or None."""
    if v < 2:
        return v
    r = math.isqrt(v) if n == 2 else 1 << -(-v.bit_length() // n)
    while n != 2:  # Newton from above
        s = ((n - 1) * r + v // r ** (n - 1)) // n
        if s >= r:
            break
        r = s
    return r if r ** n == v else None


def _exact_root(x, n):
    if n == 1:
        return x
    if x < 0:
        if n % 2 == 0:
            raise _NotExact("even root of a negative number")
        return -_exact_root(-x, n)  # odd roots of negatives are real: \sqrt[3]{-8} = -2
    a, b = _int_root(x.numerator, n), _int_root(x.denominator, n)
    if a is None or b is None:
        raise _NotExact("irrational root")
    return Fraction(a, b)


def _exact_pow(b, e):
    if e.denominator != 1:
        if e.denominator > 64:
            raise _NotExact("root index too large")
        return _exact_pow(_exact_root(b, e.denominator), Fraction(e.numerator))
    k = e.numerator
    if b == 0 and k < 0:
        raise ZeroDivisionError("0 to a negative power")
    if b == 1 or k == 0:
        return Fraction(1)
    if b == 0:
        return Fraction(0)
    if b == -1:
        return Fraction(-1 if k % 2 else 1)
    bits = max(b.numerator.bit_length(), b.denominator.bit_length()) * abs(k)
    if bits > MAX_POW_BITS:
        raise _TooBig("power with about %d bits" % bits)
    return b ** k


def _exact_log(base, x):
    if x <= 0 or (base is not None and (base <= 0 or base == 1)):
        raise _NotExact("log domain")
    if x == 1:
        return Fraction(0)
    if base is None:
        raise _NotExact("natural log")
    ln = lambda f: math.log(f.numerator) - math.log(f.denominator)  # noqa: E731 - big ints ok
    estimate = ln(x) / ln(base)
    for q in (1, 2, 3, 4, 6):  # log_4 8 = 3/2
        p = round(estimate * q)
        if abs(p - estimate * q) < 1e-6 and abs(p) <= 10_000 and _exact_pow(base, Fraction(p)) == x ** q:
            return Fraction(p, q)
    raise _NotExact("irrational log")


def _ev_exact(node, env):
    """Exact value as a Fraction; raises _NotExact when the value is not rational."""
    value = _ev_exact_node(node, env)
    if value.numerator.bit_length() + value.denominator.bit_length() > 2 * MAX_POW_BITS:
        raise _TooBig("intermediate value")  # products of many allowed powers
    return value


def _ev_exact_node(node, env):
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "sym":
        return env[node[1]]
    if kind == "const":
        if node[1] in ("pi", "e"):
            return env[node[1]]
        raise _NotExact(node[1])
    if kind == "add":
        return sum((_ev_exact(t, env) for t in node[1]), Fraction(0))
    if kind == "mul":
        out = Fraction(1)
        for f in node[1]:
            out *= _ev_exact(f, env)
            if out.numerator.bit_length() + out.denominator.bit_length() > 2 * MAX_POW_BITS:
                raise _TooBig("product")
        return out
    if kind == "neg":
        return -_ev_exact(node[1], env)
    if kind == "div":
        return _ev_exact(node[1], env) / _ev_exact(node[2], env)
    if kind == "pow":
        return _exact_pow(_ev_exact(node[1], env), _ev_exact(node[2], env))
    if kind == "root":
        n = Fraction(2) if node[2] is None else _ev_exact(node[2], env)
        if n.denominator != 1 or not 1 <= n <= 64:
            raise _NotExact("root index")
        return _exact_root(_ev_exact(node[1], env), int(n))
    if kind in ("fact", "binom"):
        args = [_ev_exact(a, env) for a in node[1:]]
        if any(a.denominator != 1 or a < 0 for a in args):
            raise _NotExact("factorial of a non-natural number")
        if max(args) > MAX_FACTORIAL:
            raise _TooBig("factorial")
        ints = [int(a) for a in args]
        return Fraction(math.factorial(ints[0]) if kind == "fact" else math.comb(*ints))
    if kind == "fn":
        x = _ev_exact(node[2], env)
        if node[1] == "abs":
            return abs(x)
        if node[1] in ("floor", "ceil"):
            return Fraction(math.floor(x) if node[1] == "floor" else math.ceil(x))
        raise _NotExact(node[1])
    if kind == "log":
        base = None if node[1] is None else _ev_exact(node[1], env)
        return _exact_log(base, _ev_exact(node[2], env))
    raise _NotExact(kind)


_CMATH = {"sin": cmath.sin, "cos": cmath.cos, "tan": cmath.tan, "arcsin": cmath.asin,
          "arccos": cmath.acos, "arctan": cmath.atan, "sinh": cmath.sinh, "cosh": cmath.cosh,
          "tanh": cmath.tanh, "cot": lambda x: 1 / cmath.tan(x), "sec": lambda x: 1 / cmath.cos(x),
          "csc": lambda x: 1 / cmath.sin(x), "coth": lambda x: 1 / cmath.tanh(x),
          "arccot": lambda x: cmath.atan(1 / x), "arcsec": lambda x: cmath.acos(1 / x),
          "arccsc": lambda x: cmath.asin(1 / x), "abs": lambda x: complex(abs(x))}


def _real_rational(node):
    """The node's value if it is a constant rational (used to pick real odd roots), else None."""
    if any(n[0] == "sym" or (n[0] == "const" and n[1] in ("pi", "e")) for n in _walk(node)):
        return None
    try:
        return _ev_exact(node, {})
    except (_NotExact, _TooBig, ZeroDivisionError):
        return None


def _float_pow(b, e_node, e):
    b = complex(b.real, b.imag or 0.0)  # -0.0j would put sqrt(-1) on the wrong side of the branch cut
    q = _real_rational(e_node)
    if q is not None and b.imag == 0 and b.real < 0 and q.denominator % 2 == 1:
        mag = (-b.real) ** float(q)  # odd roots of negatives are real, as in _exact_root
        return complex(-mag if q.numerator % 2 else mag)
    if abs(e) > 1e6 and abs(b) != 1:
        raise OverflowError("huge exponent")
    return b ** e


def _ev_float(node, env, flags):
    """Complex float value. flags['unreliable'] is set when an addition cancels > 6 digits."""
    kind = node[0]
    if kind == "num":
        return complex(float(node[1]))
    if kind == "sym":
        return complex(float(env[node[1]]))
    if kind == "const":
        if node[1] == "oo":
            raise _NotExact("infinity")
        return {"pi": complex(math.pi), "e": complex(math.e), "i": 1j}[node[1]]
    if kind == "add":
        terms = [_ev_float(t, env, flags) for t in node[1]]
        total = sum(terms)
        if abs(total) < 1e-6 * max(abs(t) for t in terms):
            flags["unreliable"] = True
        return total
    if kind == "mul":
        out = 1 + 0j
        for f in node[1]:
            out *= _ev_float(f, env, flags)
        return out
    if kind == "neg":
        return -_ev_float(node[1], env, flags)
    if kind == "div":
        return _ev_float(node[1], env, flags) / _ev_float(node[2], env, flags)
    if kind == "pow":
        return _float_pow(_ev_float(node[1], env, flags), node[2], _ev_float(node[2], env, flags))
    if kind == "root":
        n_node = ("num", Fraction(2)) if node[2] is None else node[2]
        inv = ("div", ("num", Fraction(1)), n_node)
        return _float_pow(_ev_float(node[1], env, flags), inv, 1 / _ev_float(n_node, env, flags))
    if kind in ("fact", "binom"):
        args = [_ev_float(a, env, flags) for a in node[1:]]
        if any(a.imag != 0 or a.real > 170 for a in args):
            raise OverflowError("factorial")
        g = [math.gamma(a.real + 1) for a in args]
        return complex(g[0] if kind == "fact" else g[0] / (math.gamma(args[1].real + 1) *
                                                         math.gamma(args[0].real - args[1].real + 1)))
    if kind == "fn":
        x = _ev_float(node[2], env, flags)
        if node[1] in ("floor", "ceil"):
            if x.imag != 0:
                raise ValueError("floor of a complex number")
            return complex(math.floor(x.real) if node[1] == "floor" else math.ceil(x.real))
        return complex(_CMATH[node[1]](x))
    if kind == "log":
        arg = _ev_float(node[2], env, flags)
        x = cmath.log(complex(arg.real, arg.imag or 0.0))
        return x if node[1] is None else x / cmath.log(_ev_float(node[1], env, flags))
    raise _NotExact(kind)


def _to_sympy(node, sp):
    """Our tree -> a sympy expression. Powers are size-checked before sympy can evaluate them."""
    kind = node[0]
    rec = lambda n: _to_sympy(n, sp)  # noqa: E731
    if kind == "num":
        return sp.Rational(node[1].numerator, node[1].denominator)
    if kind == "sym":
        return sp.Symbol(node[1])
    if kind == "const":
        return {"pi": sp.pi, "e": sp.E, "i": sp.I, "oo": sp.oo}[node[1]]
    if kind == "add":
        return sp.Add(*[rec(t) for t in node[1]])
    if kind == "mul":
        return sp.Mul(*[rec(f) for f in node[1]])
    if kind == "neg":
        return -rec(node[1])
    if kind == "div":
        return rec(node[1]) / rec(node[2])
    if kind == "pow":
        return _sympy_pow(rec(node[1]), rec(node[2]), sp)
    if kind == "root":
        n = sp.Integer(2) if node[2] is None else rec(node[2])
        return _sympy_pow(rec(node[1]), 1 / n, sp)
    if kind in ("fact", "binom"):
        args = [rec(a) for a in node[1:]]
        if any(a.is_number and a.is_extended_real and a > MAX_FACTORIAL for a in args):
            raise _TooBig("factorial")
        return sp.factorial(args[0]) if kind == "fact" else sp.binomial(*args)
    if kind == "fn":
        x = rec(node[2])
        names = {"arcsin": "asin", "arccos": "acos", "arctan": "atan", "arccot": "acot",
                 "arcsec": "asec", "arccsc": "acsc", "abs": "Abs", "ceil": "ceiling"}
        return getattr(sp, names.get(node[1], node[1]))(x)
    if kind == "log":
        x = rec(node[2])
        return sp.log(x) if node[1] is None else sp.log(x) / sp.log(rec(node[1]))
    raise _ParseError(kind)


def _sympy_pow(b, e, sp):
    if b.is_number and e.is_number and b not in (0, 1, -1):
        if e.is_Integer and b.is_Rational:
            bits = max(int(b.p).bit_length(), int(b.q).bit_length()) * abs(int(e))
            if bits > MAX_POW_BITS:
                raise _TooBig("power")
        elif e.is_extended_real and abs(e) > 10_000:  # e.g. sqrt(2)^(10^10) expands eagerly
            raise _TooBig("power")
        if e.is_Rational and e.q % 2 == 1 and b.is_extended_negative:
            return sp.Pow(sp.real_root(b, e.q), e.p)  # real odd roots, as in _exact_root
    return sp.Pow(b, e)


def _pairs_exact(pa, ga, names):
    """Exact values of both sides at the sample points; points where either is undefined skipped."""
    envs = _sample_envs(names, exact=True, extra=_extra_points(pa, ga) if names else ())
    if not names and not any(_has_const(x, c) for x in (pa, ga) for c in ("pi", "e")):
        envs = envs[:1]
    pairs = []
    for env in envs:
        try:
            pairs.append((_ev_exact(pa, env), _ev_exact(ga, env)))
        except ZeroDivisionError:
            continue
    return pairs


def _pairs_float(pa, ga, names):
    """Float values at the sample points, or None when floats cannot be trusted to tell them apart
    (cancellation, values near zero, overflow, domain errors)."""
    pairs = []
    envs = _sample_envs(names, exact=False, extra=_extra_points(pa, ga))
    for env in envs if names else envs[:1]:
        flags = {}
        try:
            a, b = _ev_float(pa, env, flags), _ev_float(ga, env, flags)
        except (ZeroDivisionError, ValueError, OverflowError, _NotExact):
            return None
        finite = all(math.isfinite(v.real) and math.isfinite(v.imag) for v in (a, b))
        if flags or not finite or max(abs(a), abs(b)) < 1e-6:
            return None
        pairs.append((a, b))
    return pairs


def _pairs_sympy(pa, ga, names):
    """60-digit values at the same sample points (pi and e exact), via sympy/mpmath evalf."""
    import sympy as sp
    a, b = _to_sympy(pa, sp), _to_sympy(ga, sp)
    pairs = []
    envs = _sample_envs(names, exact=False, extra=_extra_points(pa, ga))
    for env in envs if names else envs[:1]:
        subs = {sp.Symbol(k): sp.Rational(v.numerator, v.denominator) for k, v in env.items()}
        va, vb = a.evalf(60, subs=subs), b.evalf(60, subs=subs)
        if not (va.is_number and vb.is_number) or any(v.has(sp.nan, sp.zoo, sp.oo, -sp.oo) for v in (va, vb)):
            continue
        pairs.append((va, vb))
    return pairs, a, b


def _decide(pairs, mode, close, is_zero):
    """mode 'eq': values equal at every point. 'prop' / 'prop+': a / b is one nonzero (positive)
    constant at every point, i.e. the same equation or inequality up to scaling."""
    if mode == "eq":
        return all(close(a, b) for a, b in pairs)
    ratios = []
    for a, b in pairs:
        za, zb = is_zero(a), is_zero(b)
        if za != zb:
            return False
        if not za:
            ratios.append(a / b)
    if not ratios or not all(close(r, ratios[0]) for r in ratios):
        return False
    r = complex(ratios[0])
    return mode == "prop" or (abs(r.imag) <= 1e-12 * abs(r) and r.real > 0)


def _rel_close(tol):
    return lambda a, b: abs(a - b) <= tol * max(abs(a), abs(b))


def _inf_sign(node):
    if node == ("const", "oo"):
        return 1
    if node == ("neg", ("const", "oo")):
        return -1
    return None


def _leaf_verdict(pa, ga, mode, noisy, symbolic):
    """True / False, or None when only sympy can tell (and symbolic is off, i.e. in the parent).

    Order: exact rationals (parent), floats to reject clear differences (parent), then sympy at 60
    digits (worker). `noisy`: a side is a long decimal (>= 15 significant digits), i.e. float
    output, so a relative 1e-9 is tolerated; otherwise an approximation is never the value."""
    if _has_const(pa, "oo") or _has_const(ga, "oo"):
        sign = _inf_sign(pa)
        return mode == "eq" and sign is not None and sign == _inf_sign(ga)
    names = sorted(_free_symbols(pa) | _free_symbols(ga))
    need = 2 if names else 1
    if not noisy:
        try:
            pairs = _pairs_exact(pa, ga, names)
        except _NotExact:
            pairs = None
        except _TooBig:
            if not names:
                raise  # a huge constant: never evaluated anywhere
            pairs = None  # x^10000 at a sample point is big only because of the sample: try floats
        if pairs is not None:
            return len(pairs) >= need and _decide(pairs, mode, lambda a, b: a == b, lambda v: v == 0)
    pairs = _pairs_float(pa, ga, names)
    if pairs is not None:
        verdict = _decide(pairs, mode, _rel_close(1e-9), lambda v: abs(v) < 1e-12)
        if not verdict or noisy:
            return verdict
    if not symbolic:
        return None
    pairs, a, b = _pairs_sympy(pa, ga, names)
    if len(pairs) >= need:
        tol = 1e-9 if noisy else 1e-40
        return _decide(pairs, mode, lambda x, y: bool(abs(x - y) <= tol * max(abs(x), abs(y)) + 1e-50),
                       lambda v: bool(abs(v) < 1e-50))
    import sympy as sp
    return mode == "eq" and sp.simplify(a - b) == 0


# ----------------------------------------------------------------------------------------------
# Structure: lists, sets, tuples, intervals, unions, matrices, relations, text, base-b numerals
# Node kinds: ('list', items) unordered solutions `1,-2`; ('set', items); ('union', parts);
# ('seq', brackets, items) tuples and intervals; ('matrix', rows); ('rel', parts, ops);
# ('text', words); ('base', digits, base); ('expr', latex) a single expression (a leaf).
# ----------------------------------------------------------------------------------------------

_THOUSANDS_RE = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_SINGLE_VAR = r"(?:[A-Za-z]|\\[a-zA-Z]+)(?:_\{?\w+\}?)?"
_VAR_RE = re.compile(_SINGLE_VAR)
_LHS_RE = re.compile(_SINGLE_VAR + r"(?:\s*\(\s*[A-Za-z](?:\s*,\s*[A-Za-z])*\s*\))?")  # x, a_1, f(x)
_TEXT_RE = re.compile(r"[A-Za-z]+(?:[ '\-]+[A-Za-z]+)*")
_BASE_RE = re.compile(r"(\d[0-9A-Za-z]*)_\{?(\d+)\}?")
_MATRIX_RE = re.compile(r"\\begin\{(pmatrix|bmatrix|Bmatrix|matrix|smallmatrix|array)\}"
                        r"(?:\{[^{}]*\})?(.*)\\end\{\1\}", re.S)
_DECIMAL_RE = re.compile(r"\d*\.\d+")
_RELATIONS = "=<>\u2264\u2265\u2260"
_FLIP = {"<": ">", ">": "<", "\u2264": "\u2265", "\u2265": "\u2264", "=": "=", "\u2260": "\u2260"}
_MAX_ITEMS = 40  # longer lists are compared as strings only (pairwise matching is quadratic)


def _split_top_ops(s, seps):
    """Split at separator characters outside all brackets ((, [, {, and their closers).
    Returns (parts, the separators found, in order)."""
    parts, ops, depth, start = [], [], 0, 0
    for i, c in enumerate(s):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and c in seps:
            parts.append(s[start:i])
            ops.append(c)
            start = i + 1
    parts.append(s[start:])
    return parts, ops


def _split_top(s, seps):
    return _split_top_ops(s, seps)[0]


def _split_relations(s):
    return _split_top_ops(s, _RELATIONS)


def _wrapped(s):
    """True if the first opening bracket closes exactly at the last character."""
    depth = 0
    for i, c in enumerate(s):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i == len(s) - 1
    return False


def _expand_pm(s):
    """`1\\pm\\sqrt2` -> `1+\\sqrt2`, `1-\\sqrt2` (all signs of one item flip together)."""
    if "\u00b1" not in s and "\u2213" not in s:
        return [s]
    return [s.replace("\u00b1", "+").replace("\u2213", "-"), s.replace("\u00b1", "-").replace("\u2213", "+")]


def _structure(s, depth=0):
    if depth > 12:
        raise _ParseError("nested too deep")
    parts = _split_top(s, "\u222a")
    if len(parts) > 1:
        return ("union", tuple(_structure(p, depth + 1) for p in parts))
    items = [x for p in _split_top(s, ",;") for x in _expand_pm(p)]
    if len(items) > _MAX_ITEMS:
        raise _ParseError("too many items")
    if len(items) > 1:
        return ("list", tuple(_item(x, depth + 1) for x in items))
    return _item(items[0], depth + 1)


def _item(s, depth):
    s = s.strip()
    if not s:
        raise _ParseError("empty item")
    if s == "\\emptyset":
        return ("set", ())
    if s.startswith("\\{") and s.endswith("\\}") and _wrapped(s):
        inner = s[2:-2].strip()
        builder = re.fullmatch(_SINGLE_VAR + r"\s*[|:]\s*(.+)", inner)  # {x | x > 5}
        if builder:
            return _structure(builder.group(1), depth + 1)
        node = _structure(inner, depth + 1) if inner else ("list", ())
        return ("set", node[1] if node[0] == "list" else (node,))
    if s[0] in "([" and s[-1] in ")]" and _wrapped(s):
        parts = _split_top(s[1:-1], ",")
        if len(parts) > 1:
            return ("seq", s[0] + s[-1], tuple(_structure(p, depth + 1) for p in parts))
        m = _MATRIX_RE.fullmatch(s[1:-1].strip())
        if m:
            return _matrix(m.group(2), depth)
    m = _MATRIX_RE.fullmatch(s)
    if m:
        return _matrix(m.group(2), depth)
    parts, ops = _split_relations(s)
    if ops:
        return ("rel", tuple(_item(p, depth + 1) for p in parts), tuple(ops))
    parts = _split_top(s, "\u2208")
    if len(parts) == 2 and _LHS_RE.fullmatch(parts[0].strip()):  # `x \in [-2,7]`
        return _structure(parts[1], depth + 1)
    # Words, not products of one-letter variables: some word of 3+ letters, or the answer "no" (as "yes").
    if _TEXT_RE.fullmatch(s) and (max(len(w) for w in re.findall("[A-Za-z]+", s)) >= 3 or s.lower() == "no"):
        words = re.sub(r"[\s\-]+", " ", s.lower())
        return ("text", re.sub(r"^(?:a|an|the) ", "", words))  # `an ellipse` = `ellipse`
    m = _BASE_RE.fullmatch(s)
    if m and m.group(1) and 2 <= int(m.group(2)) <= 36:
        try:
            int(m.group(1), int(m.group(2)))
            return ("base", m.group(1).upper().lstrip("0") or "0", int(m.group(2)))
        except ValueError:
            pass  # not a valid numeral in that base: an ordinary subscripted expression
    return ("expr", s)


def _matrix(body, depth):
    rows = [r for r in re.split(r"\\\\", body.replace("\\hline", "")) if r.strip()]
    cells = tuple(tuple(_structure(c, depth + 1) for c in r.split("&")) for r in rows)
    if not cells or len({len(r) for r in cells}) != 1:
        raise _ParseError("ragged matrix")
    return ("matrix", cells)


def _noisy(s):
    """A decimal with >= 15 significant digits is float output; floating noise is then tolerated."""
    return any(len(d.replace(".", "").lstrip("0")) >= 15 for d in _DECIMAL_RE.findall(s))


class _Ctx:
    """Per-comparison state: parsed leaves, and whether sympy may be used (only in workers)."""

    def __init__(self, symbolic):
        self.symbolic, self.too_big, self.asts = symbolic, False, {}

    def ast(self, s):
        if s not in self.asts:
            self.asts[s] = _parse_expr(s)
        return self.asts[s]

    def constant(self, node):
        try:
            return node[0] == "expr" and not _free_symbols(self.ast(node[1]))
        except _ParseError:
            return False

    def verdict(self, ps, gs, mode):
        try:
            pa, ga = self.ast(ps), self.ast(gs)
            return _leaf_verdict(pa, ga, mode, _noisy(ps) or _noisy(gs), self.symbolic)
        except _ParseError:
            return False
        except _TooBig:
            self.too_big = True
            return False

    def leaf(self, ps, gs):
        return True if _key(ps) == _key(gs) else self.verdict(ps, gs, "eq")


def _all3(verdicts):
    """Three-valued AND over an iterable (stops at the first False)."""
    out = True
    for v in verdicts:
        if v is False:
            return False
        if v is None:
            out = None
    return out


def _ordered(ps, gs, ctx):
    return len(ps) == len(gs) and _all3(_cmp(a, b, ctx) for a, b in zip(ps, gs))


def _match(edges, n):
    """Is there a perfect matching in the bipartite graph edges[i] -> set of j? (Kuhn's algorithm)"""
    owner = [-1] * n

    def augment(i, seen):
        for j in edges[i]:
            if j not in seen:
                seen.add(j)
                if owner[j] < 0 or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    return all(augment(i, set()) for i in range(n))


def _multiset(ps, gs, ctx):
    """Unordered comparison (`1,-2` = `-2,1`): a perfect matching of equal items."""
    if len(ps) != len(gs):
        return False
    table = [[_cmp(a, b, ctx) for b in gs] for a in ps]
    n = len(ps)
    if _match([{j for j in range(n) if table[i][j] is True} for i in range(n)], n):
        return True
    if _match([{j for j in range(n) if table[i][j] is not False} for i in range(n)], n):
        return None
    return False


def _vector(node):
    """Items of a tuple, a bare list, or a one-row / one-column matrix, else None."""
    if node[0] in ("seq", "list"):
        return node[-1]
    if node[0] == "matrix" and (len(node[1]) == 1 or len(node[1][0]) == 1):
        return tuple(c for row in node[1] for c in row)
    return None


def _cmp(p, g, ctx):
    """Three-valued: True, False, or None (needs sympy; only in the parent)."""
    kp, kg = p[0], g[0]
    if kp == "rel" or kg == "rel":
        return _cmp_rel(p, g, ctx)
    if kp == "text" or kg == "text":
        return kp == kg and p[1] == g[1]
    if kp == "base" or kg == "base":
        return _cmp_base(p, g)
    if kp == "expr" and kg == "expr":
        return ctx.leaf(p[1], g[1])
    unordered = {("list", "list"), ("set", "set"), ("list", "set"), ("set", "list"),
                 ("union", "union"), ("list", "union"), ("union", "list")}
    if (kp, kg) in unordered:
        return _multiset(p[-1], g[-1], ctx)
    if kp == "seq" and kg == "seq":
        return p[1] == g[1] and _ordered(p[2], g[2], ctx)  # (1,5] != [1,5)
    if kp == "matrix" and kg == "matrix":
        shape = lambda m: (len(m[1]), len(m[1][0]))  # noqa: E731
        return shape(p) == shape(g) and _ordered(_flat(p), _flat(g), ctx)
    pv, gv = _vector(p), _vector(g)
    if pv is None or gv is None or "list" == kp == kg:
        return False
    # A column vector equals the same tuple; a bare list `1,2` equals the tuple `(1,2)`,
    # but not an interval with a closed end like `[1,2)`.
    if any(x[0] == "seq" and x[1] != "()" for x in (p, g)) and "matrix" not in (kp, kg):
        return False
    return _ordered(pv, gv, ctx)


def _flat(m):
    return tuple(c for row in m[1] for c in row)


def _cmp_base(p, g):
    """Base-b numerals: same base -> same digit string; `1112122_3` != `1112112_3`.
    Against a plain integer, accept the same digits (subscript omitted) or the same value."""
    if p[0] == g[0] == "base":
        if p[2] == g[2]:
            return p[1] == g[1]
        return int(p[1], p[2]) == int(g[1], g[2])
    base, other = (p, g) if p[0] == "base" else (g, p)
    if other[0] != "expr" or not re.fullmatch(r"\d+", other[1]):
        return False
    digits = other[1].lstrip("0") or "0"
    return digits == base[1] or int(digits) == int(base[1], base[2])


def _assigned(node):
    """Right side of `x = 5`, `f(x) = ...`, `(k,n) = (2,4)`, else None (a real equation)."""
    if node[0] != "rel" or set(node[2]) != {"="}:
        return None
    lhs = node[1][0]
    is_var = lambda n: n[0] == "expr" and _LHS_RE.fullmatch(n[1].strip())  # noqa: E731
    if is_var(lhs) or (lhs[0] == "seq" and all(is_var(x) for x in lhs[2])):
        return node[1][-1]
    if len(node[1]) == 2 and is_var(node[1][1]):  # `3 = x`
        return lhs
    return None


def _interval(node, ctx):
    """`x<5` -> (-oo,5); `-2 \\le x \\le 7` -> [-2,7]; None if not one variable against constants."""
    parts, ops = node[1], node[2]
    if not 2 <= len(parts) <= 3 or any(o not in "<>\u2264\u2265" for o in ops):
        return None
    if any(x[0] != "expr" for x in parts):
        return None
    if len(parts) == 2:
        (a, b), op = parts, ops[0]
        if _VAR_RE.fullmatch(a[1].strip()):  # x < 5 is read as 5 > x
            a, b, op = b, a, _FLIP[op]
        if op in "<\u2264":  # c < x  ->  c < x < oo
            parts, ops = (a, b, ("expr", "\\infty")), (op, "<")
        else:                  # c > x  ->  -oo < x < c
            parts, ops = (("expr", "-\\infty"), b, a), ("<", _FLIP[op])
    lo, var, hi = parts
    if not _VAR_RE.fullmatch(var[1].strip()) or not (ctx.constant(lo) and ctx.constant(hi)):
        return None
    if ops[0] in ">\u2265" and ops[1] in ">\u2265":
        lo, hi, ops = hi, lo, (_FLIP[ops[1]], _FLIP[ops[0]])
    if ops[0] not in "<\u2264" or ops[1] not in "<\u2264":
        return None
    brackets = ("(" if ops[0] == "<" else "[") + (")" if ops[1] == "<" else "]")
    return ("seq", brackets, (lo, hi))


def _cmp_rel(p, g, ctx):
    pv, gv = _assigned(p), _assigned(g)
    if p[0] != "rel" or g[0] != "rel":
        rel, other = (p, g) if p[0] == "rel" else (g, p)
        value = _assigned(rel)
        if value is not None:
            return _cmp(value, other, ctx) if rel is p else _cmp(other, value, ctx)
        iv = _interval(rel, ctx)
        if iv is None or other[0] not in ("seq", "union", "list"):
            return False
        return _cmp(iv, other, ctx) if rel is p else _cmp(other, iv, ctx)
    if pv is not None and gv is not None:
        same_lhs = p[1][0][0] == "expr" and g[1][0][0] == "expr" and _key(p[1][0][1]) == _key(g[1][0][1])
        if same_lhs or (ctx.constant(pv) and ctx.constant(gv)) or "seq" in (pv[0], gv[0]):
            return _cmp(pv, gv, ctx)
    ip, ig = _interval(p, ctx), _interval(g, ctx)
    if ip is not None and ig is not None:
        return _cmp(ip, ig, ctx)
    return _cmp_relations(p, g, ctx)


def _differences(node):
    """Each link `A op B` of a chain as (D, op) with op in = != < <=, so that D op 0."""
    parts, ops, out = node[1], node[2], []
    if any(x[0] != "expr" for x in parts):
        return None
    for (a, b), op in zip(zip(parts, parts[1:]), ops):
        if op in ">\u2265":
            a, b, op = b, a, _FLIP[op]
        out.append(("(%s)-(%s)" % (a[1], b[1]), op))
    return out


def _cmp_relations(p, g, ctx):
    """Equations are equal when lhs-rhs are proportional (`x-2y+z-1=0` = `2x-4y+2z=2`);
    inequalities when proportional by a positive constant with the same strictness."""
    dp, dg = _differences(p), _differences(g)
    if dp is None or dg is None or len(dp) != len(dg) or sorted(o for _, o in dp) != sorted(o for _, o in dg):
        return False
    verdicts = []
    for (a, op), (b, op2) in zip(sorted(dp, key=lambda x: x[1]), sorted(dg, key=lambda x: x[1])):
        verdicts.append(ctx.verdict(a, b, "prop" if op in "=\u2260" else "prop+"))
    return _all3(verdicts)


def _compare(pred, gold, symbolic):
    """Compare two normalised answers. Returns (True / False / None, ctx)."""
    if _THOUSANDS_RE.fullmatch(gold):
        gold = gold.replace(",", "")
    g = _structure(gold)
    # `1,000` is one thousand only when the gold is a single item; `1,2` against a list is a list.
    if g[0] != "list" and _THOUSANDS_RE.fullmatch(pred):
        pred = pred.replace(",", "")
    ctx = _Ctx(symbolic)
    return _cmp(_structure(pred), g, ctx), ctx


# ----------------------------------------------------------------------------------------------
# Worker pool: sympy runs only here, each comparison under a hard wall-clock limit. A worker that
# overruns is SIGKILLed (this also stops loops inside C code) and replaced. Workers are fresh
# interpreters (`reward.py --worker FD`): the caller, maybe a threaded torch/CUDA process, is never forked.
# ----------------------------------------------------------------------------------------------

TIMEOUT_S = 2.0          # per symbolic comparison; the paper's eval allowed 3 s (eval.md §2.4)
STARTUP_TIMEOUT_S = 120  # a new worker imports sympy (~1 s; far longer on a loaded node)
MAX_ANSWER_CHARS = 1000  # longer answers only get an exact normalised-string match
CACHE_SIZE = 200_000     # (pred, gold) verdicts kept, least recently used dropped

_stats = dict(calls=0, cache_hits=0, parent_decided=0, symbolic=0, timeouts=0, errors=0,
              too_long=0, too_big=0, worker_starts=0)
_cache = OrderedDict()
_lock = threading.RLock()       # guards _stats and _cache
_pool_lock = threading.Lock()   # one batch at a time uses the workers
_pool = None


def stats():
    """Counters since import (or reset_stats): calls, cache_hits, parent_decided (no sympy needed),
    symbolic (sent to a worker), timeouts, errors, too_long, too_big, worker_starts."""
    with _lock:
        return dict(_stats)


def reset_stats(clear_cache=False):
    with _lock:
        for k in _stats:
            _stats[k] = 0
        if clear_cache:
            _cache.clear()


def _bump(name, n=1):
    with _lock:
        _stats[name] += n


def _cache_get(key):
    with _lock:
        value = _cache.get(key)
        if value is not None:
            _cache.move_to_end(key)
        return value


def _cache_put(key, value):
    with _lock:
        _cache[key] = value
        _cache.move_to_end(key)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)


def _process_limits():
    """In a worker: cap address space at current + 3 GiB so a runaway allocation fails fast."""
    try:
        import resource
        with open("/proc/self/statm") as f:
            vsize = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = vsize + (3 << 30)
        if soft == resource.RLIM_INFINITY or soft > limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError):
        pass  # not Linux: the wall-clock kill still applies


def _worker_main(conn):
    """Worker loop: receive (idx, pred, gold) normalised strings, answer (idx, status, verdict)."""
    _process_limits()
    # Imports sympy (never imported in the parent) and warms its caches before any clock runs.
    _compare("\\sin(\\pi/3)", "\\frac{\\sqrt{3}}{2}", symbolic=True)
    conn.send(("ready", os.getpid(), None))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        idx, pred, gold = task
        try:
            conn.send((idx, "ok", _compare(pred, gold, symbolic=True)[0] is True))
        except Exception as exc:  # a grading error is a wrong answer, reported, never a crash
            conn.send((idx, "error", "%s: %s" % (type(exc).__name__, str(exc)[:200])))


class _Pool:
    """Lazily started, reused worker processes with a per-task hard timeout.

    Each worker is a fresh interpreter running `python reward.py --worker FD` (stdlib + sympy only), talking
    over a socketpair. Unlike multiprocessing's spawn/forkserver, this never re-imports the caller's __main__:
    a script without an `if __name__ == "__main__"` guard still gets right answers, and the trainer's torch
    is not loaded into graders.
    """

    def __init__(self):
        self.workers = []

    def start_one(self):
        parent, child = socket.socketpair()
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", str(child.fileno())],
                                pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL)
        child.close()
        self.workers.append(dict(proc=proc, conn=Connection(parent.detach()), ready=False, task=None, t0=0.0,
                                 born=time.monotonic()))
        _bump("worker_starts")

    def kill(self, w):
        w["proc"].kill()
        try:
            w["proc"].wait(timeout=5)
        except subprocess.TimeoutExpired:  # unkillable (D state): forget it rather than block the trainer
            pass
        w["conn"].close()
        self.workers.remove(w)

    def close(self):
        for w in list(self.workers):
            try:
                w["conn"].send(None)
            except (OSError, ValueError):
                pass
            try:
                w["proc"].wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
            self.kill(w)

    def run(self, tasks, n_workers, timeout_s):
        """tasks: [(pred, gold)] -> [(status, verdict)], status in ok / timeout / error."""
        results, queue, failures = [None] * len(tasks), deque(range(len(tasks))), 0
        for w in [w for w in self.workers if w["task"] is None][:max(0, len(self.workers) - n_workers)]:
            self.kill(w)
        while len(self.workers) < min(n_workers, len(tasks)):
            self.start_one()
        while queue or any(w["task"] is not None for w in self.workers):
            now = time.monotonic()
            for w in list(self.workers):
                if w["ready"] and w["task"] is None and queue:
                    w["task"], w["t0"] = queue.popleft(), now
                    try:
                        w["conn"].send((w["task"],) + tuple(tasks[w["task"]]))
                    except OSError:  # died while idle: requeue the task, replace the worker
                        queue.appendleft(w["task"])
                        failures += 1
                        self.kill(w)
                        self.start_one()
            deadlines = [w["t0"] + timeout_s if w["ready"] else w["born"] + STARTUP_TIMEOUT_S
                         for w in self.workers if w["task"] is not None or not w["ready"]]
            wait_s = max(0.0, min(deadlines) - now) if deadlines else 0.0
            for conn in _wait_conns([w["conn"] for w in self.workers], timeout=wait_s):
                w = next(x for x in self.workers if x["conn"] is conn)
                try:
                    idx, status, verdict = conn.recv()
                except (EOFError, OSError):  # the worker died (e.g. out of memory)
                    if w["task"] is not None:
                        results[w["task"]] = ("error", "worker died")
                    failures += 1
                    self.kill(w)
                    self.start_one()
                    continue
                if idx == "ready":
                    w["ready"] = True
                else:
                    results[idx], w["task"] = (status, verdict), None
            now = time.monotonic()
            for w in list(self.workers):
                if w["task"] is not None and now - w["t0"] > timeout_s:
                    results[w["task"]] = ("timeout", None)
                    self.kill(w)
                    self.start_one()
                elif not w["ready"] and now - w["born"] > STARTUP_TIMEOUT_S:
                    failures += 1
                    self.kill(w)
                    self.start_one()
            if failures > 2 * n_workers + 2:  # workers cannot start: fail the rest, don't spin
                for i in list(queue) + [w["task"] for w in self.workers if w["task"] is not None]:
                    results[i] = ("error", "workers failed to start")
                self.close()
                break
        return results


def _shutdown():
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.close()
            _pool = None


atexit.register(_shutdown)


def _run_symbolic(tasks, workers, timeout_s):
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = _Pool()
        return _pool.run(tasks, workers, timeout_s)


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------

def _decide_cheap(pred, gold):
    """(verdict or None, normalised pair). Runs in the caller: strings and exact rationals only."""
    if len(pred) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:
        _bump("too_long")  # no parsing: a light normalisation and an exact match
        light = lambda s: re.sub(r"\s+|\\left|\\right|\$", "", s)  # noqa: E731
        return light(pred) == light(gold), None
    # 60^\circ against pi/3: compare in radians. Against 60 (no pi), the degree sign is dropped.
    has_deg = lambda s: bool(_DEGREE_RE.search(s)) or "\u00b0" in s  # noqa: E731
    has_pi = lambda s: "\\pi" in s or "\u03c0" in s  # noqa: E731
    pn = _normalize(pred, has_deg(pred) and has_pi(gold) and not has_deg(gold))
    gn = _normalize(gold, has_deg(gold) and has_pi(pred) and not has_deg(pred))
    if not pn or not gn:
        return False, None
    if _key(pn) == _key(gn):
        return True, None
    hit = _cache_get(("norm", pn, gn))
    if hit is not None:
        return hit, None
    try:
        verdict, ctx = _compare(pn, gn, symbolic=False)
    except _ParseError:
        return False, None
    except (_TooBig, RecursionError):
        _bump("too_big")
        return False, None
    if ctx.too_big:
        _bump("too_big")
    if verdict is False and _percent_equal(pred, gold, pn, gn):
        return True, None
    return verdict, (pn, gn)


_PERCENT_RE = re.compile(r"%|\bpercent\b", re.IGNORECASE)


def _percent_equal(pred, gold, pn, gn):
    """An explicit percent sign on exactly one side means value/100 there: `50\\%` = 0.5, as `50\\%` = 50
    (the sign is dropped in normalisation). Without a sign no rescaling happens, so 7000 != 70 != 0.7."""
    on_pred, on_gold = bool(_PERCENT_RE.search(pred)), bool(_PERCENT_RE.search(gold))
    if on_pred == on_gold:
        return False
    scaled = ("(%s)/100" % pn, gn) if on_pred else (pn, "(%s)/100" % gn)
    try:
        return _compare(*scaled, symbolic=False)[0] is True
    except (_ParseError, _TooBig, RecursionError):
        return False


def _equiv_many(pairs, workers=None, timeout_s=None):
    """Verdicts for [(pred, gold)]: cache, then the cheap path, then deduplicated sympy tasks."""
    # Default: this node's cores shared by the torchrun ranks on it (each rank grades its own responses).
    workers = max(1, workers or (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    timeout_s = TIMEOUT_S if timeout_s is None else timeout_s
    out, todo = [False] * len(pairs), {}
    _bump("calls", len(pairs))
    for i, (pred, gold) in enumerate(pairs):
        if pred is None or gold is None or not str(pred).strip() or not str(gold).strip():
            continue  # an empty answer never equals anything, not even an empty gold
        key = (str(pred).strip(), str(gold).strip())
        hit = _cache_get(key)
        if hit is not None:
            _bump("cache_hits")
            out[i] = hit
        else:
            todo.setdefault(key, []).append(i)
    pending = []
    for key, idxs in todo.items():
        try:
            verdict, norm = _decide_cheap(*key)
        except Exception as exc:  # a bug in the cheap path must not stop training
            print("reward.py: cheap-path error %s on %r" % (type(exc).__name__, key), file=sys.stderr)
            _bump("errors")
            verdict, norm = False, None
        if verdict is None:
            pending.append((key, norm, idxs))
            continue
        _bump("parent_decided")
        _cache_put(key, verdict)
        for i in idxs:
            out[i] = verdict
    if pending:
        _bump("symbolic", len(pending))
        results = _run_symbolic([norm for _, norm, _ in pending], workers, timeout_s)
        for (key, norm, idxs), (status, verdict) in zip(pending, results):
            if status != "ok":
                _bump("timeouts" if status == "timeout" else "errors")
            verdict = status == "ok" and verdict is True
            _cache_put(key, verdict)  # timeouts too: the same slow pair will not stall twice
            _cache_put(("norm",) + norm, verdict)
            for i in idxs:
                out[i] = verdict
    return out


def is_equiv(pred, gold, timeout_s=None):
    """Are two final answers the same mathematical object? See the module docstring."""
    return _equiv_many([(pred, gold)], timeout_s=timeout_s)[0]


def _gold_answer(gold):
    gold = str(gold)
    return extract_answer(gold) if "\\boxed" in gold or "\\fbox" in gold else gold


def grade(response, gold, timeout_s=None):
    """The paper's outcome reward: 1.0 if the last box equals the gold, else 0.0."""
    answer = extract_answer(response)
    if answer is None:
        return 0.0
    return 1.0 if is_equiv(answer, _gold_answer(gold), timeout_s=timeout_s) else 0.0


def format_reward(response):
    """The format-only ablation (paper Appendix C.2.3): 1.0 if a non-empty boxed answer exists."""
    answer = extract_answer(response)
    return 1.0 if answer else 0.0


def grade_batch(responses, golds, workers=None, timeout_s=None):
    """[grade(r, g) for r, g in zip(responses, golds)], computed with a cache, deduplication and
    `workers` processes (default: the cores over LOCAL_WORLD_SIZE) for the comparisons that need sympy."""
    if len(responses) != len(golds):
        raise ValueError("grade_batch: %d responses but %d golds" % (len(responses), len(golds)))
    gold_cache = {}
    pairs = []
    for response, gold in zip(responses, golds):
        if gold not in gold_cache:
            gold_cache[gold] = _gold_answer(gold)
        pairs.append((extract_answer(response), gold_cache[gold]))
    return [1.0 if v else 0.0 for v in _equiv_many(pairs, workers=workers, timeout_s=timeout_s)]


# ----------------------------------------------------------------------------------------------
# CLI: grade a jsonl file, or benchmark
# ----------------------------------------------------------------------------------------------

_FILLER = ["Let the speed be v miles per hour.", "We know the wind pressure P varies jointly as A and v^3.",
           "So P = k A v^3 for some constant k.", "Substituting P = 4, A = 2 and v = 8 gives 4 = k \\cdot 2 \\cdot 512.",
           "Hence k = \\frac{1}{256}.", "Now set P = 32 and A = 4.", "Then 32 = \\frac{1}{256} \\cdot 4 v^3.",
           "This simplifies to v^3 = 2048.", "Let me double-check the arithmetic step by step.",
           "Taking cube roots, v = \\sqrt[3]{2048}.", "We can write 2048 = 2^{11}, so v = 2^{11/3}."]
_RIGHT = ["12.8", "12.80", "\\frac{64}{5}", "12.8 \\text{ mph}", "\\dfrac{64}{5}", "64/5", "v = 12.8",
          "12.8 \\text{ miles per hour}", "12.8\\,\\text{mph}", "\\frac{128}{10}", "12.8 mph", "$12.8$"]
_RIGHT_SYMBOLIC = ["\\frac{64\\sqrt{2}}{5\\sqrt{2}}", "\\frac{64}{5}(\\sin^2 x+\\cos^2 x)",
                   "12.8 + \\sqrt{3} - \\sqrt{3}", "\\frac{64}{5}\\cos(0)"]
_WRONG = ["12.7", "\\sqrt[3]{2048}", "13", "64/5.1", "12.699", "8\\sqrt[3]{4}", "12", "\\frac{64}{3}",
          "128", "1.28", "2^{11/3}", "v^3 = 2048", "16", "12.6992", "\\frac{2048}{160}", "x^2+1"]
_ADVERSARIAL = ["\\boxed{10^{10^{10^{10}}}}", "\\boxed{9^{9^{9^{9}}}}", "\\boxed{" + "1" * 200_000 + "}",
                "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}", "\\boxed{" + "\\frac{1}{" * 300 + "2" + "}" * 300 + "}",
                "\\boxed{" + "\\sqrt{" * 300 + "2" + "}" * 300 + "}", "\\boxed{１２．８ ｍｐｈ}", "\\boxed{12.8\u00b0}",
                "\\boxed{" * 5000, "\\boxed{(" + "x+" * 400 + "1)^{200}}", "\\boxed{1000000!}",
                "\\boxed{\\sin(\\sin(\\sin(\\sin(\\sin(\\sin(\\sin(\\sin(x))))))))^{99}}"]


def _bench_batch(n=1024, seed=0):
    """A realistic 1-shot batch for pi_1 (gold 12.8): ~1-3k chars of reasoning, then the answer."""
    import random
    rng = random.Random(seed)
    responses = []
    for _ in range(n):
        text = " ".join(rng.choice(_FILLER) for _ in range(rng.randint(15, 45)))
        u = rng.random()
        if u < 0.40:
            answer = rng.choice(_RIGHT)
        elif u < 0.45:
            answer = rng.choice(_RIGHT_SYMBOLIC)
        elif u < 0.70:
            answer = rng.choice(_WRONG)
        elif u < 0.85:  # random expressions
            a, b = rng.randint(1, 99), rng.randint(2, 50)
            answer = rng.choice(["%d.%d" % (a, b), "\\frac{%d}{%d}" % (a, b), "%d\\sqrt{%d}" % (a, b),
                                 "%d^{%d/3}" % (b, a), "\\frac{%d}{%d}x+%d" % (a, b, a)])
        else:
            responses.append(text + " So the answer is about 12.8 mph.")  # no box
            continue
        responses.append(text + " Therefore the velocity is \\boxed{%s}." % answer)
    return responses


def _symbolic_batch(n=1024, distinct=256):
    """Worst case for the pool: every distinct answer is right but only sympy can confirm it."""
    answers = ["\\frac{64}{5}+\\sin(%d\\pi)" % k if k % 2 else "\\frac{64\\sqrt{%d}}{5\\sqrt{%d}}" % (k, k)
               for k in range(2, distinct + 2)]
    return ["%s so \\boxed{%s}" % (_FILLER[0], answers[i % distinct]) for i in range(n)]


def _bench_cold(kind):
    """Run in a fresh process: first grade_batch call with an empty cache and no workers."""
    responses = _bench_batch() if kind == "pi1" else _symbolic_batch()
    t0 = time.perf_counter()
    grade_batch(responses, ["12.8"] * len(responses))
    dt = time.perf_counter() - t0
    print(json.dumps(dict(seconds=dt, per_s=len(responses) / dt, stats=stats())))


def _bench():
    import subprocess
    responses = _bench_batch()
    golds = ["12.8"] * len(responses)
    for kind, label in (("pi1", "pi_1 batch"), ("symbolic", "all-sympy batch, 256 distinct")):
        cold = json.loads(subprocess.run([sys.executable, os.path.abspath(__file__), "--bench-cold", kind],
                                         check=True, capture_output=True, text=True).stdout)
        print("cold, %s (fresh process, empty cache, workers started inside): %.0f responses/s  "
              "(%.3f s for 1024; %d comparisons sent to sympy workers, %d timeouts)"
              % (label, cold["per_s"], cold["seconds"], cold["stats"]["symbolic"], cold["stats"]["timeouts"]))
    scores = grade_batch(responses, golds)  # fill the cache
    t0, reps = time.perf_counter(), 5
    for _ in range(reps):
        grade_batch(responses, golds)
    warm = reps * len(responses) / (time.perf_counter() - t0)
    print("warm (cached): %.0f responses/s   mean reward %.3f" % (warm, sum(scores) / len(scores)))
    worst, worst_what = 0.0, ""
    for response in sorted(set(responses)) + _ADVERSARIAL:
        reset_stats(clear_cache=True)
        t0 = time.perf_counter()
        grade(response, "12.8")
        dt = time.perf_counter() - t0
        if dt > worst:
            worst, worst_what = dt, response[-60:]
    print("worst single-call latency (empty cache, warm workers; every distinct pi_1 response and %d "
          "adversarial inputs): %.3f s  (...%r)" % (len(_ADVERSARIAL), worst, worst_what))
    print("machine: %d CPU cores; timeout per symbolic call %.1f s" % (os.cpu_count(), TIMEOUT_S))


def _grade_file(path):
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    scores = grade_batch([r["response"] for r in rows], [str(r["answer"]) for r in rows])
    s = stats()
    print("accuracy %.4f (%d/%d)  timeouts %d  errors %d"
          % (sum(scores) / max(1, len(scores)), sum(scores), len(scores), s["timeouts"], s["errors"]))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":  # started by _Pool.start_one
        _worker_main(Connection(int(sys.argv[2])))
    elif len(sys.argv) == 2 and sys.argv[1] == "--bench":
        _bench()
    elif len(sys.argv) == 3 and sys.argv[1] == "--bench-cold":
        _bench_cold(sys.argv[2])
    elif len(sys.argv) == 2 and not sys.argv[1].startswith("-"):
        _grade_file(sys.argv[1])
    else:
        sys.exit(__doc__)
