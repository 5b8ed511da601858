"""paper_grader.py - the paper's evaluation grader (Qwen2.5-Eval), a second grader beside ours (reward.py).

Owns: `paper_grade` (is a completion right by the paper's evaluation pipeline?), `paper_grade_batch` (the same for
thousands of rows: deduplicated and cached), `paper_extract` (the normalised prediction that pipeline compares) and
`paper_gold` (the normalised gold it compares against). eval.py reports this verdict as "paper's grader" beside
reward.py's strict one; docs/graders.md says which number to use for what, and how agreement was measured.

    python paper_grader.py RESPONSES.jsonl BENCHMARK    # lines {"response", "answer"}: accuracy by the paper's grader
    python paper_grader.py --bench                      # responses/s on MATH500 (after data/prepare.py)

The pipeline, rebuilt from the release (ypwang61/One-Shot-RLVR at 21ed529, Qwen2.5-Eval/evaluation/; rule by rule in
../shared/spec/eval.md §2-§5; file:line citations below are to that folder), written anew, step for step:
  1. the completion as math_eval.py:365-373 leaves it: stripped, cut at its stop strings;
  2. extract_answer (parser.py:500-570): a Minerva "final answer is $..$. I hope" sentence, else the text after the
     last `boxed`, else after "he answer is", "final answer is", 答案是, else the last number; a clean-up;
     strip_string; then run_execute's second strip_string (parser.py:731-746);
  3. the gold as parse_ground_truth makes it, twice (math_eval.py:181, then evaluate.py:29-30; eval.md §2.2);
  4. the multiple-choice fix-up of math_eval.py:388-401;
  5. math_equal(prediction, gold) (grader.py:73-259), a timeout counting as wrong (evaluate.py:36-53).

Where this file can differ from the release (all measured in docs/graders.md: 99.96-99.99% agreement):
  * symbolic_equal (grader.py:276-329) parses with sympy's parse_latex (ANTLR), then parse_expr, then the vendored
    latex2sympy2; antlr4 and latex2sympy are not dependencies. `_LatexPrefixParser` re-implements parse_latex
    (sympy 1.12's LaTeX.g4 and its conversion) with its prefix parsing (`1,-2` reads as 1), `\\pi`, `e` and `i` as
    free symbols, x(...) as a function, mixed numbers as products. `_PythonExpr` and `_latex2sympy_lite` cover
    only the cases of the other two parsers that decide verdicts. Equality is decided by evaluation instead of
    simplify (exact rationals via reward.py's capped exact arithmetic, complex floats at sample points), with
    sympy's rules: constants equal within a relative 1e-4, relations compared by |lhs - rhs|.
  * no pool, no timeouts: every step is bounded in-process (linear-time rewrites of the release's quadratic regexes;
    parsing capped at MAX_TOKENS tokens, MAX_NESTING groups, MAX_CHAIN terms, memoised; exact arithmetic capped by
    reward.MAX_POW_BITS / MAX_FACTORIAL; at most MAX_SYMBOLIC_CALLS symbolic comparisons and MAX_DEPTH recursion
    per comparison). Past a bound the comparison counts as wrong, as the release's 3 s timeout does. The release
    exits on a grading exception (evaluate.py:50-52); we report it on stderr and count it wrong.
  * no tool loop: a completion ending in a code fence is graded as it is (the release would run the code and
    continue generating, math_eval.py:326-356).
"""
import cmath
import functools
import math
import re
import sys
from fractions import Fraction

import reward

# Our benchmark names -> the release's data_name (sh/eval_all_math.sh); ARC is graded as the release grades its
# multiple-choice sets (mmlu_stem: extract_answer's early choice_answer_clean return, parser.py:502-504).
DATA_NAMES = {"math500": "math500", "aime24": "aime24x8", "amc23": "amc23x8", "minerva_math": "minerva_math",
              "olympiadbench": "olympiadbench", "aime25": "aime25x8", "arc_e": "mmlu_stem", "arc_c": "mmlu_stem"}
CHOICE_SETS = ("mmlu_stem", "sat_math", "aqua", "gaokao2023")      # parser.py:502
NO_UNIT_STRIP = ("carp_en", "minerva_math")                         # parser.py:573 STRIP_EXCEPTIONS
STOP_STRINGS = ("</s>", "<|im_end|>", "<|endoftext|>")              # math_eval.py:237
LETTERS = ("A", "B", "C", "D", "E")

MAX_DEPTH = 60           # math_equal recursion (tuples in tuples): the release would hit RecursionError and exit
MAX_SYMBOLIC_CALLS = 300  # symbolic_equal calls in one comparison: sympy parses and simplifies at ~10 ms each, so
                          # more would run past the release's 3 s limit (a timeout counts as wrong)
MAX_PARSE_CHARS = 5000   # parse_expr / latex2sympy stand-ins skip longer strings (the release times out on them)
CACHE_SIZE = 200_000


def _data_name(benchmark):
    if benchmark not in DATA_NAMES:
        raise ValueError(f"unknown benchmark {benchmark!r}; valid: {', '.join(DATA_NAMES)}")
    return DATA_NAMES[benchmark]


# ----------------------------------------------------------------------------------------------------------------------
# strip_string (parser.py:213-351), step by step in the release's order
# ----------------------------------------------------------------------------------------------------------------------

# parser.py:75-208 "units mainly from MathQA", in the release's order (it matters: `a .` goes before `a`); each is
# also used with an "s" appended (parser.py:210). The tokens are regular expressions: `.` matches any character.
_UNIT_TEXTS = (
    "east|degree|mph|kmph|ft|m sqaure| m east|sq m|deg|mile|q .|monkey|prime|ratio|profit of rs|rd|o|gm|p . m|lb|tile|"
    "per|dm|lt|gain|ab|way|west|a .|b .|c .|d .|e .|f .|g .|h .|t|a|h|no change|men|soldier|pie|bc|excess|st|inches|"
    "noon|percent|by|gal|kmh|c|acre|rise|a . m|th|\u03c0 r 2|sq|mark|l|toy|coin|sq . m|gallon|\u00b0 f|profit|minw|yr|"
    "women|feet|am|pm|hr|cu cm|square|v \u00e2 \u20ac \u2122|are|rupee|rounds|cubic|cc|mtr|s|ohm|number|kmph|day|hour|"
    "minute|min|second|man|woman|sec|cube|mt|sq inch|mp|\u220f cm \u00b3|hectare|more|sec|unit|cu . m|cm 2|rs .|rs|kg|"
    "g|month|km|m|cm|mm|apple|liter|loss|yard|pure|year|increase|decrease|d|less|Surface|litre|pi sq m|s .|metre|"
    "meter|inch").split("|")
_UNITS = _UNIT_TEXTS + [t + "s" for t in _UNIT_TEXTS]


_UNIT_RULES = [re.compile(r"(^|\W)" + t + r"($|\W)") for t in _UNITS]
# A rule can only match where its token does: a token of word characters must be a whole run of word characters
# of the string (deletions keep the delimiters, so no run appears later in the pass); any other token needs its
# literal pieces (between the `.` wildcards) in the current string. These tests skip most of the 2 x 266 passes.
_WORD_UNITS = {}
for _i, _t in enumerate(_UNITS):
    if re.fullmatch(r"\w+", _t):
        _WORD_UNITS.setdefault(_t, []).append(_i)
_OTHER_UNITS = [(i, [p for p in t.split(".") if p]) for i, t in enumerate(_UNITS) if not re.fullmatch(r"\w+", t)]
assert all(" " in _UNITS[i] for i, _ in _OTHER_UNITS)  # so a string without spaces skips them all
_WORD_RUN_RE = re.compile(r"\w+")

# parser.py:328-329, with the digit run anchored at its start and possessive: the same matches in linear time
# (the release's `(\d+)\.0*([^\d])` retries every digit of a long run: quadratic).
_ZEROS_MID_RE = re.compile(r"(?<!\d)(\d++)\.0*+(\D)")
_ZEROS_END_RE = re.compile(r"(?<!\d)(\d++)\.0*+$")
_SQRT_RE = re.compile(r"\\sqrt(\w+)")

# word2number 1.1 (`w2n.word_to_num`), used by convert_word_number (parser.py:66-71)
_NUMBER_WORDS = dict(zip(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
    "eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million billion".split(),
    list(range(21)) + [30, 40, 50, 60, 70, 80, 90, 100, 1000, 10 ** 6, 10 ** 9]))
_DIGIT_WORDS = "zero one two three four five six seven eight nine".split()


class _NotANumber(Exception):
    pass


def _w2n_group(words):
    """word2number's number_formation: 1-4 words before a multiplier word."""
    if not words:
        raise _NotANumber("empty group")
    n = [_NUMBER_WORDS[w] for w in words]
    if len(n) == 4:
        return n[0] * n[1] + n[2] + n[3]
    if len(n) == 3:
        return n[0] * n[1] + n[2]
    if len(n) == 2:
        return n[0] * n[1] if 100 in n else n[0] + n[1]
    return n[0]


def _w2n(text):
    """word2number 1.1's word_to_num, as an int, a float or _NotANumber (its ValueError / IndexError)."""
    s = text.replace("-", " ").lower()
    if s.isdigit():
        try:
            return int(s)  # `025` -> 25; `²` and numbers over 4300 digits raise: the text stays
        except ValueError as exc:
            raise _NotANumber(str(exc)) from exc
    words = [w for w in s.strip().split() if w in _NUMBER_WORDS or w == "point"]
    if not words or any(words.count(w) > 1 for w in ("thousand", "million", "billion", "point")):
        raise _NotANumber("no or repeated number words")
    decimals = []
    if "point" in words:
        at = words.index("point")
        words, decimals = words[:at], words[at + 1:]
    pos = {w: (words.index(w) if w in words else -1) for w in ("billion", "million", "thousand")}
    bi, mi, th = pos["billion"], pos["million"], pos["thousand"]
    if (th > -1 and (th < mi or th < bi)) or (mi > -1 and mi < bi):
        raise _NotANumber("malformed")
    total = 0
    if len(words) == 1:
        total += _NUMBER_WORDS[words[0]]
    elif words:
        if bi > -1:
            total += _w2n_group(words[:bi]) * 10 ** 9
        if mi > -1:
            total += _w2n_group(words[bi + 1:mi] if bi > -1 else words[:mi]) * 10 ** 6
        if th > -1:
            start = mi + 1 if mi > -1 else (bi + 1 if bi > -1 else 0)
            total += _w2n_group(words[start:th]) * 1000
        # the words after a multiplier, in word2number's order of tests (`two million three thousand` -> 2001003)
        tail_at = next((i for i in (th, mi, bi) if -1 < i != len(words) - 1), None)
        if tail_at is not None:
            total += _w2n_group(words[tail_at + 1:])
        elif th == mi == bi == -1:
            total += _w2n_group(words)
    if decimals:
        digits = [str(_DIGIT_WORDS.index(w)) for w in decimals if w in _DIGIT_WORDS]
        total += float("0." + "".join(digits)) if len(digits) == len(decimals) else 0
    return total


def _convert_word_number(text):
    try:
        return str(_w2n(text))
    except _NotANumber:
        return text


def _replace_groups(s, opener, keep):
    """re.sub(opener + r"(.*?)\\}", r"\\1" if keep else "", s) in linear time (the lazy scan of the release's pattern
    restarts at every opener: quadratic when no `}` follows)."""
    out, pos = [], 0
    while True:
        at = s.find(opener, pos)
        if at < 0:
            break
        close = s.find("}", at + len(opener))
        if close < 0:
            break
        out.append(s[pos:at] + (s[at + len(opener):close] if keep else ""))
        pos = close + 1
    return "".join(out) + s[pos:]


def _array_to_pmatrix(s):
    """re.sub(r"\\\\begin\\{array\\}\\{.*?\\}", r"\\\\begin{pmatrix}", s) in linear time."""
    out, pos = [], 0
    while True:
        at = s.find("\\begin{array}{", pos)
        if at < 0:
            break
        close = s.find("}", at + len("\\begin{array}{"))
        if close < 0:
            break
        out.append(s[pos:at] + "\\begin{pmatrix}")
        pos = close + 1
    return "".join(out) + s[pos:]


def _remove_units(s):
    """parser.py:253-261: two passes over the unit tokens in order; a deletion is kept only if something is left."""
    for _ in range(2):
        candidates = [(i, None) for w in set(_WORD_RUN_RE.findall(s)).intersection(_WORD_UNITS) for i in _WORD_UNITS[w]]
        if " " in s:
            candidates = sorted(candidates + _OTHER_UNITS)
        else:
            candidates.sort()
        for i, pieces in candidates:
            if pieces is None or all([p in s for p in pieces]):
                t = _UNIT_RULES[i].sub(r"\1\2", s)
                if t != "":
                    s = t
    return s


def _fix_fracs(s):
    """parser.py:12-41: `\\frac12` -> `\\frac{1}{2}`, `\\frac1{72}` -> `\\frac{1}{72}`."""
    parts = s.split("\\frac")
    out = parts[0]
    for part in parts[1:]:
        out += "\\frac"
        if part[:1] == "{":
            out += part
        elif len(part) < 2:
            return s
        elif part[1] != "{":
            out += "{" + part[0] + "}{" + part[1] + "}" + part[2:]
        else:
            out += "{" + part[0] + "}" + part[1:]
    return out


def _fix_a_slash_b(s):
    """parser.py:44-58: an `a/b` of two integers (or operands holding sqrt) that prints back the same -> \\frac."""
    parts = s.split("/")
    if len(parts) != 2:
        return s
    a, b = parts
    try:
        a = a if "sqrt" in a else int(a)
        b = b if "sqrt" in b else int(b)
    except ValueError:
        return s
    return "\\frac{%s}{%s}" % (a, b) if s == "%s/%s" % (a, b) else s


def strip_string(string, skip_unit=False):
    """The release's normalisation (parser.py:213-351), in its order (eval.md §4 numbers the steps)."""
    s = str(string).strip().replace("\n", "").rstrip(".").replace("\\!", "")
    s = _array_to_pmatrix(s).replace("\\end{array}", "\\end{pmatrix}").replace("bmatrix", "pmatrix")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\neq", "\\ne").replace("\\leq", "\\le").replace("\\geq", "\\ge")
    s = s.replace("\\left", "").replace("\\right", "").replace("\\{", "{").replace("\\}", "}")
    # `re.sub(r"\\text{.*?}$", "", s).strip()` (from the first \text{ to a final `}`), kept if not empty: this also
    # strips surrounding spaces when there is no such \text{}
    s = (s[:s.index("\\text{")] if s.endswith("}") and "\\text{" in s else s).strip() or s
    if not skip_unit:
        s = _remove_units(s)
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\$", "").replace("$", "")
    s = s.replace("\\(", "").replace("\\)", "")
    s = _convert_word_number(s)
    s = _replace_groups(s, "\\text{", keep=True)
    for key in ("x=", "y=", "z=", "x\\in", "y\\in", "z\\in", "x\\to", "y\\to", "z\\to"):
        s = s.replace(key, "")
    s = s.replace("\\emptyset", "{}").replace("(-\\infty,\\infty)", "\\mathbb{R}")
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    # (parser.py:293-304 strips brackets from an alphanumeric string that starts with one: it never fires)
    s = s.replace("infinity", "\\infty")
    if "\\infty" not in s:
        s = s.replace("inf", "\\infty")
    s = s.replace("+\\inity", "\\infty").replace("and", "").replace("\\mathbf", "")
    s = _replace_groups(s, "\\mbox{", keep=False)
    if "j" in s and "i" not in s:
        s = s.replace("j", "i")
    s = _ZEROS_END_RE.sub(r"\1", _ZEROS_MID_RE.sub(r"\1\2", s))
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        s = sides[1]
    s = _SQRT_RE.sub(r"\\sqrt{\1}", s).replace(" ", "")
    return _fix_a_slash_b(_fix_fracs(s))


# ----------------------------------------------------------------------------------------------------------------------
# Extraction (parser.py:368-409, :500-570, :731-746) and the gold (parser.py:576-660)
# ----------------------------------------------------------------------------------------------------------------------

_LAST_NUMBER_RE = re.compile(r"-?\d*\.?\d+")
_LETTER_RE = re.compile(r"\b(A|B|C|D|E)\b")


def _choice_clean(text):
    """parser.py's choice_answer_clean (368-409): the letter after the last "answer is" / "choice is", else the last
    stand-alone A-E, else the text."""
    text = text.strip("\n")
    if text.count("choice is") > 1 or text.count("answer is") > 1:  # few-shot output: keep the first chunk
        text = text.split("\n\n")[0]
    parts = re.split("choice is|answer is", text)
    after_trigger = len(parts) > 1
    text = parts[-1] if after_trigger else text
    text = text.strip("\n").rstrip(".").rstrip("/").strip(" ").lstrip(":")
    found = _LETTER_RE.findall(text.upper()) or [text.strip().strip(".")]
    return (found[0] if after_trigger else found[-1]).rstrip(".").rstrip("/")


def _grader_choice_clean(text):
    """grader.py's own choice_answer_clean (25-36): the last stand-alone A-E letter, else the text."""
    text = text.strip("\n").rstrip(".").rstrip("/").strip(" ").lstrip(":")
    found = _LETTER_RE.findall(text.upper()) or [text.strip().strip(".")]
    return found[-1].rstrip(".").rstrip("/")


def _boxed_content(text):
    """What follows the last "boxed" (parser.py:510-530): brace-balanced content (an unclosed box runs to the end;
    `\\{` counts as a brace, as in the release), or the text up to the first `$`."""
    tail = text[text.rfind("boxed") + len("boxed"):]
    if tail[:1] != "{":
        return tail.split("$")[0].strip()
    depth = 1
    for m in re.finditer(r"[{}]", tail[1:]):
        depth += 1 if m.group() == "{" else -1
        if depth == 0:
            return tail[1:m.start() + 1]
    return tail[1:]


def extract_answer(text, data_name):
    """The release's extract_answer (parser.py:500-570) with use_last_number=True, strip_string included."""
    text = text.replace("\u043a\u0438", "")
    if data_name in CHOICE_SETS:
        return _choice_clean(text)
    if "final answer is $" in text and "$. I hope" in text:  # the Minerva sentence wins over any box
        pred = text.split("final answer is $", 1)[1].split("$. I hope", 1)[0].strip()
    elif "boxed" in text:
        if text.endswith("boxed"):
            return ""
        pred = _boxed_content(text)
    elif "he answer is" in text:
        pred = text.rsplit("he answer is", 1)[1].strip()
    elif "final answer is" in text:
        pred = text.rsplit("final answer is", 1)[1].strip()
    elif "\u7b54\u6848\u662f" in text:  # 答案是: the first paragraph after its first occurrence
        pred = text.split("\u7b54\u6848\u662f")[1].strip().split("\n\n")[0].strip()
    else:
        numbers = _LAST_NUMBER_RE.findall(text.replace(",", ""))
        pred = numbers[-1] if numbers else ""
    pred = re.sub(r"\n\s*", "", pred)
    if pred[:1] == ":":
        pred = pred[1:]
    if pred[-1:] == ".":
        pred = pred[:-1]
    if pred[-1:] == "/":
        pred = pred[:-1]
    return strip_string(pred, skip_unit=data_name in NO_UNIT_STRIP)


def _completion(response):
    """math_eval.py:365-373: the completion stripped, then cut at the first of each stop string."""
    code = response.strip()
    for stop in STOP_STRINGS:
        if stop in code:
            code = code.split(stop)[0].strip()
    return code


def _prediction(response, data_name):
    """run_execute (parser.py:731-746): None for an empty completion, else extract_answer and strip_string again."""
    code = _completion(response)
    if not code or code == "error":
        return code, None
    return code, strip_string(extract_answer(code, data_name), skip_unit=data_name in NO_UNIT_STRIP)


def _choice_fixup(pred, code, first_gold):
    """math_eval.py:388-401, with the gold of the first parse: a single-letter gold makes a non-letter prediction
    `choice_answer_clean(completion)`; a gold of letters A-E only (also the empty gold of MATH500 #97) keeps only the
    prediction's A-E characters."""
    if first_gold in LETTERS and pred not in LETTERS:
        return _choice_clean(code)
    if pred is not None and all(c in "ABCDE" for c in first_gold) and not all(c in "ABCDE" for c in pred):
        return "".join(c for c in pred if c in "ABCDE")
    return pred


@functools.lru_cache(maxsize=4096)
def _golds(gold, data_name):
    """(first parse, second parse) of the gold string data/prepare.py writes (parser.py:576-660, eval.md §2.2)."""
    gold = str(gold)
    if data_name == "math500":  # the last box of the solution through extract_answer; the first parse then strips again
        second = extract_answer("\\boxed{" + gold + "}", data_name)
        return strip_string(second), second
    if data_name in NO_UNIT_STRIP:  # minerva: extract_answer (no unit list) once, then kept
        first = extract_answer("\\boxed{" + gold + "}", data_name)
        first = first.replace("\\neq", "\\ne").replace("\\leq", "\\le").replace("\\geq", "\\ge")
        return first, first
    first = strip_string(gold)
    return first, strip_string(first)


def paper_gold(gold, benchmark):
    """The normalised gold the paper's pipeline compares (the second parse, evaluate.py:29-30)."""
    return _golds(gold, _data_name(benchmark))[1]


def paper_extract(response, benchmark, gold=None):
    """The normalised prediction the paper's pipeline compares: None where run_execute yields None (an empty
    completion). With `gold`, after math_eval's multiple-choice fix-up too (always applied for ARC, whose golds are
    letters)."""
    data_name = _data_name(benchmark)
    code, pred = _prediction(response, data_name)
    if gold is not None:
        pred = _choice_fixup(pred, code, _golds(gold, data_name)[0])
    elif data_name in CHOICE_SETS and pred is not None:
        pred = _choice_fixup(pred, code, "A")
    return pred


# ----------------------------------------------------------------------------------------------------------------------
# math_equal (grader.py:39-273)
# ----------------------------------------------------------------------------------------------------------------------

_TUPLE_RE = re.compile(r"(\(|\[).+(\)|\])")   # grader.py:151: a prefix match, not a whole-string one
_MATRIX_OPEN = ("\\begin{pmatrix}", "\\begin{bmatrix}")
_MATRIX_CLOSE = ("\\end{pmatrix}", "\\end{bmatrix}")


def _parse_digits(s):
    """grader.py:39-52: all commas deleted, then float(); or a trailing (\\)% means /100."""
    s = s.replace(",", "")
    try:
        return float(s)
    except ValueError:
        pass
    if s.endswith("%"):
        s = s[:-1]
        s = s[:-1] if s.endswith("\\") else s
        try:
            return float(s) / 100
        except ValueError:
            pass
    return None


def _str_to_pmatrix(s):
    """grader.py:60-70 (`\\{.*,.*\\}` is greedy: at most one match, from the first `{` that has a comma after it to
    the last `}`), in linear time; its commas become single backslashes."""
    s = s.strip()
    close = s.rfind("}")
    comma = s.rfind(",", 0, close) if close >= 0 else -1
    start = s.find("{", 0, comma) if comma >= 0 else -1
    if start < 0:
        return ""
    return "\\begin{pmatrix}" + s[start:close + 1].strip("{}").replace(",", "\\") + "\\end{pmatrix}"


def _matrix_rows(s):
    body = s[len("\\begin{pmatrix}"):-len("\\end{pmatrix}")]
    return [line.strip() for line in body.split("\\\\") if line.strip()]


def _matrices_equal(pred, ref, budget, depth):
    """grader.py:166-223: row by row, cell by cell (cells split at `&`)."""
    pred_rows, ref_rows = _matrix_rows(pred), _matrix_rows(ref)
    if len(pred_rows) != len(ref_rows):
        return False
    for pred_row, ref_row in zip(pred_rows, ref_rows):
        pred_cells, ref_cells = pred_row.split("&"), ref_row.split("&")
        if len(pred_cells) != len(ref_cells):
            return False
        if not all([_math_equal(p, r, budget, depth + 1) for p, r in zip(pred_cells, ref_cells)]):
            return False
    return True


class _OutOfTime(Exception):
    """The comparison needs more symbolic work than the release could do in its 3 s (evaluate.py:36-53)."""


class _Budget:
    def __init__(self, symbolic_calls):
        self.left = symbolic_calls

    def spend(self):
        self.left -= 1
        if self.left < 0:
            raise _OutOfTime()


def _math_equal(pred, ref, budget, depth=0):
    """grader.py:73-259 with include_percentage, is_close on and timeout off (as evaluate.py calls it)."""
    if depth > MAX_DEPTH:
        raise _OutOfTime()  # the release recurses until RecursionError and exits (evaluate.py:50-52)
    if pred is None or ref is None:
        return False
    if pred.strip().lower() == ref.strip().lower():
        return True
    if ref in LETTERS and _grader_choice_clean(pred) == ref:
        return True
    p, r = _parse_digits(pred), _parse_digits(ref)
    if p is not None and r is not None:  # numbers: x/100, x, x*100 within a relative 1e-4, and nothing else
        return any(math.isclose(target, p, rel_tol=1e-4) for target in (r / 100, r, r * 100))
    if not pred:
        return False
    ref, pred = ref.strip(), pred.strip()
    if "pmatrix" in pred and "pmatrix" not in ref:
        ref = _str_to_pmatrix(ref)
    pred_str, ref_str = pred, ref  # brackets of any kind ignored (grader.py:131-147)
    if (pred.startswith("[") and pred.endswith("]") and not ref.startswith("(")) or \
            (pred.startswith("(") and pred.endswith(")") and not ref.startswith("[")):
        pred_str, ref_str = pred_str.strip("[]()"), ref_str.strip("[]()")
    for ch in "{}()":
        pred_str, ref_str = pred_str.replace(ch, ""), ref_str.replace(ch, "")
    if pred_str.lower() == ref_str.lower():
        return True
    if _TUPLE_RE.match(pred) and _TUPLE_RE.match(ref):  # element by element, brackets ignored (grader.py:150-165)
        pred_parts, ref_parts = pred[1:-1].split(","), ref[1:-1].split(",")
        if len(pred_parts) == len(ref_parts) and \
                all([_math_equal(a, b, budget, depth + 1) for a, b in zip(pred_parts, ref_parts)]):
            return True
    if pred.startswith(_MATRIX_OPEN) and pred.endswith(_MATRIX_CLOSE) and ref.startswith(_MATRIX_OPEN) and \
            ref.endswith(_MATRIX_CLOSE) and _matrices_equal(pred, ref, budget, depth):
        return True
    if pred.count("=") == 1 and ref.count("=") == 1:  # equations: lhs - (rhs), also negated (grader.py:225-231)
        pl, pr = pred.split("=")
        rl, rr = ref.split("=")
        p_diff, r_diff = "%s - (%s)" % (pl.strip(), pr.strip()), "%s - (%s)" % (rl.strip(), rr.strip())
        if _symbolic_equal(p_diff, r_diff, budget) or _symbolic_equal("-(%s)" % p_diff, r_diff, budget):
            return True
    elif pred.count("=") == 1 and len(pred.split("=")[0].strip()) <= 2 and "=" not in ref:
        if _math_equal(pred.split("=")[1], ref, budget, depth + 1):
            return True
    elif ref.count("=") == 1 and len(ref.split("=")[0].strip()) <= 2 and "=" not in pred:
        if _math_equal(pred, ref.split("=")[1], budget, depth + 1):
            return True
    return _symbolic_equal(pred, ref, budget)


# ----------------------------------------------------------------------------------------------------------------------
# symbolic_equal's parser: sympy 1.12's parse_latex (LaTeX.g4 + _parse_latex_antlr.py), re-implemented
#
# Lexer: ANTLR's longest match, ties to the earlier rule; single letters and single digits are tokens; anything the
# grammar has no rule for (`;`, `%`, `\\\\`, unicode) is an error, raised when the parser first looks at it.
# Parser: recursive descent that parses the longest valid prefix, as ANTLR does for a start rule without EOF
# (`1,-2` -> 1, `2+(3` -> 2, `2^{3` -> 2): a loop or optional element that fails is dropped silently, except where
# parse_latex was observed to commit (a relation operator, `.` after digits, `_`): there the parse fails.
# ----------------------------------------------------------------------------------------------------------------------

_SKIPPED = ("\\,", "\\thinspace", "\\:", "\\medspace", "\\;", "\\thickspace", "\\quad", "\\qquad", "\\!",
            "\\negthinspace", "\\negmedspace", "\\negthickspace", "\\left", "\\right", "\\vrule", "\\vcenter", "\\vbox",
            "\\vskip", "\\vspace", "\\hfil", "\\*", "\\-", "\\.", "\\/", '\\"', "\\(", "\\=")
_FUNC_NAMES = ("exp log lg ln sin cos tan csc sec cot arcsin arccos arctan arccsc arcsec arccot sinh cosh tanh arsinh "
               "arcosh artanh").split()
_COMMANDS = dict(
    [(c, "skip") for c in _SKIPPED] +
    [("\\{", "lbrace_lit"), ("\\}", "rbrace_lit"), ("\\right|", "rbar"), ("\\left|", "lbar"), ("\\langle", "langle"),
     ("\\rangle", "rangle"), ("\\lim", "lim")] +
    [(c, "to") for c in ("\\to", "\\rightarrow", "\\Rightarrow", "\\longrightarrow", "\\Longrightarrow")] +
    [("\\int", "int"), ("\\int\\limits", "int"), ("\\sum", "sum"), ("\\prod", "prod")] +
    [("\\" + f, "func") for f in _FUNC_NAMES] +
    [("\\lfloor", "lfloor"), ("\\rfloor", "rfloor"), ("\\lceil", "lceil"), ("\\rceil", "rceil"), ("\\sqrt", "sqrt"),
     ("\\overline", "overline"), ("\\times", "mulop"), ("\\cdot", "mulop"), ("\\div", "divop"),
     ("\\frac", "frac"), ("\\dfrac", "frac"), ("\\tfrac", "frac"), ("\\binom", "binom"), ("\\dbinom", "binom"),
     ("\\tbinom", "binom"), ("\\mathit", "mathit"), ("\\neq", "rel")] +
    [(c, "rel") for c in ("\\leq", "\\le", "\\leqq", "\\leqslant", "\\geq", "\\ge", "\\geqq", "\\geqslant")])
_REL_OPS = {"\\neq": "!=", "\\leq": "<=", "\\le": "<=", "\\leqq": "<=", "\\leqslant": "<=", "\\geq": ">=",
            "\\ge": ">=", "\\geqq": ">=", "\\geqslant": ">=", "<": "<", ">": ">"}
_CHAR_TOKENS = {"+": "add", "-": "sub", "*": "mulop", "/": "divop", ":": "divop", "(": "(", ")": ")", "{": "{",
                "}": "}", "[": "[", "]": "]", "|": "bar", "_": "_", "^": "^", "<": "rel", ">": "rel", "!": "!",
                ",": ",", ".": "."}
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ASCII_LETTERS_RE = re.compile(r"[a-zA-Z]+")
_EQUAL_RE = re.compile(r"&[ \t\r\n]*=|=(?:[ \t\r\n]*&)?")
_DIFFERENTIAL_RE = re.compile(r"d[ \t\r\n]*(?:\\[a-zA-Z]+|[a-zA-Z])")
_WS = " \t\r\n"
_COMMAND_PREFIXES = {}
for _c in _COMMANDS:
    _COMMAND_PREFIXES.setdefault(_c[:2], []).append(_c)


class _LexError(Exception):
    """A character parse_latex's lexer has no rule for: parse_latex fails (no prefix is returned)."""


class _Fatal(Exception):
    """A syntax error parse_latex raises rather than returning a prefix."""


class _Syntax(Exception):
    """A syntax error an enclosing loop or optional element may recover from by stopping before it."""


class _Unsupported(Exception):
    """Something parse_latex builds that we do not model (integrals, sums, limits, derivatives, bras and kets)."""


def _lex_one(s, i):
    """(kind, text, next position) of the token at s[i:], skipped tokens included; _LexError if none."""
    c = s[i]
    if c == "\\":
        m = _ASCII_LETTERS_RE.match(s, i + 1)
        symbol_len = 1 + len(m.group()) if m else 0
        best = max((cmd for cmd in _COMMAND_PREFIXES.get(s[i:i + 2], ()) if s.startswith(cmd, i)),
                   key=len, default="")
        if best and len(best) >= symbol_len:
            return _COMMANDS[best], best, i + len(best)
        if symbol_len:
            return "symbol", s[i:i + symbol_len], i + symbol_len
        raise _LexError("no token at %r" % s[i:i + 2])
    if c == "d":
        m = _DIFFERENTIAL_RE.match(s, i)
        if m:
            return "differential", m.group(), m.end()
    if c in _LETTERS:
        return "letter", c, i + 1
    if "0" <= c <= "9":
        return "digit", c, i + 1
    if c in "&=":
        m = _EQUAL_RE.match(s, i)
        if not m:
            raise _LexError("lone &")
        return "rel", "=", m.end()
    if c == "'":
        j = i
        while j < len(s) and s[j] == "'":
            j += 1
        return "quotes", s[i:j], j
    if c in _CHAR_TOKENS:
        return _CHAR_TOKENS[c], c, i + 1
    raise _LexError("no token at %r" % c)


class _Tokens:
    """Lazy token stream (ANTLR lexes as the parser looks ahead: an error past the parsed prefix that no lookahead
    reaches does not count)."""

    def __init__(self, s):
        self.s, self.at, self.toks, self.spans = s, 0, [], []

    def get(self, k):
        while len(self.toks) <= k:
            while self.at < len(self.s) and self.s[self.at] in _WS:
                self.at += 1
            if self.at >= len(self.s):
                return ("eof", "")
            start = self.at
            kind, text, self.at = _lex_one(self.s, self.at)
            if kind != "skip":
                self.toks.append((kind, text))
                self.spans.append((start, self.at))
        return self.toks[k]

    def source(self, first, end):
        """The source text of tokens first..end-1 (ANTLR's rule2text)."""
        return self.s[self.spans[first][0]:self.spans[end - 1][1]] if end > first else ""


MAX_NESTING = 100        # parse_latex hits Python's recursion limit at about 100-120 nested groups (then it fails)
MAX_CHAIN = 970          # ... and at about 975 terms or factors in one sum or product
MAX_TOKENS = 3000        # parse_latex needs seconds for a few hundred tokens: past this the release times out
_ONE, _MINUS_ONE, _HALF = ("num", Fraction(1)), ("num", Fraction(-1)), ("num", Fraction(1, 2))
_TRIG = ("sin", "cos", "tan", "csc", "sec", "cot", "sinh", "cosh", "tanh")
_CLOSERS = {"(": ")", "[": "]", "{": "}", "lbrace_lit": "rbrace_lit"}
_POSTFIX_STARTS = frozenset(["(", "[", "{", "lbrace_lit", "bar", "lfloor", "lceil", "func", "int", "sqrt", "overline",
                             "sum", "prod", "lim", "letter", "symbol", "digit", "differential", "mathit", "frac",
                             "binom"])


def _negate(node):
    """sympy's `-x`: a number becomes a negative number."""
    return ("num", -node[1]) if node[0] == "num" else ("neg", node)


def _node_key(node):
    """A printable key for a subscript (sympy prints it into the symbol's name: x_{1}, x_{n + 1})."""
    if node[0] == "num":
        return str(node[1])
    if node[0] == "sym":
        return node[1]
    return repr(node)


class _LatexPrefixParser:
    """parse_latex's grammar (LaTeX.g4: math, relation, additive, mp, unary, postfix, exp, comp, atom, func) over
    the lazy token stream, with its prefix and commit behaviour as observed on sympy 1.12 + antlr4 4.11.1:
      * a loop element that fails ends the loop silently: `2+(3` is 2, `2x(3` is 2x, `2^{3` is 2;
      * `.` after digits and `_` commit: `5.` and `x_` fail. Such a failure inside brackets, braces or a function
        still ends a `+` / `*` / `^` loop silently (`2+(3.)` is 2) but not at the operand's own level (`2+3.`
        fails); the implicit-product loop always recovers (`2x_` is 2);
      * a relation operator commits: `x=` and `x=(1` fail;
      * errors sympy raises while converting (`025` as a Python literal) count only in the final tree.
    Results are memoised by position, so backtracking stays polynomial."""

    def __init__(self, s, lenient=False):
        self.tokens, self.pos, self.memo, self.depth, self.lenient = _Tokens(s), 0, {}, 0, lenient

    def kind(self, ahead=0):
        if self.pos + ahead > MAX_TOKENS:
            raise _Unsupported("too many tokens")
        return self.tokens.get(self.pos + ahead)[0]

    def take(self):
        tok = self.tokens.get(self.pos)
        if tok[0] == "eof":
            raise _Syntax("unexpected end")
        self.pos += 1
        return tok

    def expect(self, kind):
        if self.kind() != kind:
            raise _Syntax("expected " + kind)
        return self.take()

    def attempt(self, any_fatal, parse, *args):
        """parse(*args), or None with the position restored when it fails recoverably: a syntax error, a commit
        failure inside brackets, or (any_fatal) any commit failure."""
        start = self.pos
        try:
            return parse(*args)
        except _Syntax:
            self.pos = start
            return None
        except _Fatal as exc:
            if not (any_fatal or exc.args[-1] == "nested"):
                raise
            self.pos = start
            return None

    def nested(self, parse, *args):
        """parse(*args) inside brackets or a function: its commit failures become recoverable outside."""
        try:
            return parse(*args)
        except _Fatal as exc:
            raise _Fatal(exc.args[0], "nested") from exc

    def memoised(self, key, parse, *args):
        start = self.pos
        if (key, start) in self.memo:
            node, end = self.memo[(key, start)]
            if isinstance(node, Exception):
                raise node
            self.pos = end
            return node
        try:
            node = parse(*args)
        except (_Syntax, _Fatal) as exc:
            self.memo[(key, start)] = (exc, start)
            raise
        self.memo[(key, start)] = (node, self.pos)
        return node

    def parse(self):
        """math: relation. A relation operator commits. Conversion errors count only in the final tree."""
        node = self.expr()
        while self.kind() == "rel":
            op = self.take()[1]
            try:
                rhs = self.expr()
            except _Syntax as exc:
                raise _Fatal("relation without a right side") from exc
            node = _relation(_REL_OPS.get(op, op), node, rhs)
        bad = next((n for n in _walk(node) if n[0] == "bad"), None)
        if bad is not None:
            raise _Fatal(bad[1])
        return node

    def expr(self):
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise _Unsupported("nesting too deep (parse_latex: RecursionError)")
        try:
            return self.memoised("expr", self.additive)
        finally:
            self.depth -= 1

    def group(self, closer):
        self.take()
        node = self.nested(self.expr)
        self.expect(closer)
        return node

    def additive(self):
        node, terms = self.mp(False), 1
        while self.kind() in ("add", "sub"):
            start, op = self.pos, self.take()[0]
            rhs = self.attempt(False, self.mp, False)
            if rhs is None:  # `2+` and `2+(3` parse as 2
                self.pos = start
                break
            terms += 1
            if terms > MAX_CHAIN:
                raise _Unsupported("sum too long (parse_latex: RecursionError)")
            node = ("add", node, rhs if op == "add" else _negate(rhs))
        return node

    def mp(self, nofunc):
        node = self.unary(nofunc)
        while self.kind() in ("mulop", "divop"):
            start, op = self.pos, self.take()[0]
            rhs = self.attempt(False, self.unary, nofunc)
            if rhs is None:
                self.pos = start
                break
            node = ("mul", node, rhs if op == "mulop" else ("pow", rhs, _MINUS_ONE))
        return node

    def unary(self, nofunc):
        """unary: (+|-) unary | postfix+ ; unary_nofunc: (+|-) unary_nofunc | postfix postfix_nofunc*."""
        if self.kind() in ("add", "sub"):
            op = self.take()[0]
            inner = self.unary(nofunc)
            return inner if op == "add" else _negate(inner)
        items = [self.memoised(("postfix", True), self.postfix, True)]
        while self.kind() in _POSTFIX_STARTS:
            item = self.attempt(True, self.memoised, ("postfix", not nofunc), self.postfix, not nofunc)
            if item is None:
                break
            items.append(item)
            if len(items) > MAX_CHAIN:
                raise _Unsupported("product too long (parse_latex: RecursionError)")
        return _implicit_product(items)

    def postfix(self, allow_func):
        node = self.exp(allow_func)
        while self.kind() == "!":
            self.take()
            node = ("bad", "factorial of a derivative") if node[0] == "dop" else ("fn", "factorial", node)
        if self.kind() == "bar" and self.kind(1) in ("^", "_") and self.kind(2) == "{":
            raise _Unsupported("eval_at")  # f|_{x=1}^{2}: an evaluation bar (not modelled)
        return node

    def exp(self, allow_func):
        node = self.comp(allow_func)
        while self.kind() == "^":
            start = self.pos
            self.take()
            power = self.attempt(False, self.exponent)
            if power is None:  # `2^` and `2^{3` parse as 2
                self.pos = start
                break
            node = ("bad", "power of a derivative") if node[0] == "dop" else ("pow", node, power)
        return node

    def exponent(self):
        """(atom | {expr}) subexpr? -- a subscript after an exponent is parsed and dropped (x^2_3 -> x**2)."""
        power = self.braced() if self.kind() == "{" else self.atom()
        if self.kind() == "_":
            self.subscript()
        return power

    def comp(self, allow_func):
        kind = self.kind()
        if kind in _CLOSERS:
            return self.group(_CLOSERS[kind])
        if kind == "bar":
            return ("fn", "abs", self.group("bar"))
        if kind in ("lfloor", "lceil"):
            return ("fn", "floor" if kind == "lfloor" else "ceiling", self.group("r" + kind[1:]))
        if kind in ("func", "int", "sqrt", "overline", "sum", "prod", "lim"):
            if not allow_func:
                raise _Syntax("no function here")
            return self.func()
        if kind in ("letter", "symbol") and allow_func:
            call = self.attempt(False, self.call)  # f(x), x(x+1): a function application where it parses
            if call is not None:
                return call
        return self.atom()

    def subscript(self, max_digits=None):
        """subexpr: _ (atom | {expr}); `_` commits (`x_` fails, observed)."""
        self.take()
        try:
            return self.braced() if self.kind() == "{" else self.atom(max_digits)
        except _Syntax as exc:
            raise _Fatal("bad subscript") from exc

    def script(self):
        """supexpr: ^ (atom | {expr})"""
        self.take()
        return self.braced() if self.kind() == "{" else self.atom()

    def sub_and_quotes(self):
        """(subexpr? SINGLE_QUOTES? | SINGLE_QUOTES? subexpr?)"""
        sub = quotes = None
        if self.kind() == "_":
            sub = self.subscript()
            if self.kind() == "quotes":
                quotes = self.take()[1]
        elif self.kind() == "quotes":
            quotes = self.take()[1]
            if self.kind() == "_":
                sub = self.subscript()
        return sub, quotes

    def call(self):
        """(LETTER | SYMBOL) subexpr? quotes? ( args ): an undefined function, Function(name)(*args)."""
        kind, text = self.take()
        sub, quotes = self.sub_and_quotes()
        self.expect("(")
        args = [self.nested(self.expr)]
        while self.kind() == ",":
            self.take()
            args.append(self.nested(self.expr))
        self.expect(")")
        name = (text if kind == "letter" else text[1:]) + ("_{%s}" % _node_key(sub) if sub else "")
        return ("ufn", name + (quotes or ""), tuple(args))

    def atom(self, max_digits=None):
        kind, text = self.tokens.get(self.pos)
        if kind in ("letter", "symbol"):
            self.take()
            sub, quotes = self.sub_and_quotes()
            if text == "\\infty":
                return ("oo",)
            name = (text if kind == "letter" else text[1:]) + ("_{%s}" % _node_key(sub) if sub else "")
            return ("sym", name + (quotes or "") if kind == "letter" else name)  # a SYMBOL's quotes are dropped
        if kind == "digit":
            return self.number(max_digits)
        if kind == "differential":  # `dx` is one token: the symbol dx
            self.take()
            return ("sym", "d" + text[1:].lstrip(_WS).lstrip("\\"))
        if kind == "mathit":
            self.take()
            self.expect("{")
            letters = []
            while self.kind() == "letter":
                letters.append(self.take()[1])
            self.expect("}")
            return ("sym", "".join(letters))
        if kind == "frac":
            return self.frac()
        if kind == "binom":
            self.take()
            return ("binom", self.braced(), self.braced())
        raise _Syntax("no atom")

    def braced(self):
        return self.group("}") if self.kind() == "{" else self.expect("{")

    def number(self, max_digits=None):
        """DIGIT+ (',' DIGIT DIGIT DIGIT)* ('.' DIGIT+)?: `1,000` is 1000, `12,34` is 12; `5.` fails. ANTLR's
        lookahead keeps a digit that a failing `.` follows out of the run (`2+33.` is 2+3, `1.680.45` is
        1.68*0.45). sympy reads the digits as a Python literal: `025` fails, when it is in the final tree."""
        run = 0
        while self.kind(run) == "digit":
            run += 1
        full = run
        if run > 1 and self.kind(run) == "." and self.kind(run + 1) != "digit":
            run -= 1
        run = min(run, max_digits or run)
        digits = [self.take()[1] for _ in range(run)]
        while run == full and self.kind() == "," and all(self.kind(k) == "digit" for k in (1, 2, 3)):
            self.take()
            digits += [self.take()[1] for _ in range(3)]
        if self.kind() == "." and (max_digits is None):
            self.take()
            if self.kind() != "digit":
                raise _Fatal("'.' without digits")
            digits += [".", self.take()[1]]
            while self.kind() == "digit" and self.kind(1) != ".":
                digits.append(self.take()[1])
        text = "".join(digits)
        if "." not in text and len(text) > 1 and text[0] == "0" and text.strip("0") and not self.lenient:
            return ("bad", "leading zero (sympy.Number: not a Python literal)")
        try:
            return ("num", Fraction(text))
        except ValueError as exc:  # more digits than int() accepts
            raise _Unsupported("number too long") from exc

    def frac(self):
        """convert_frac: upper * lower^-1, or a derivative: `\\frac{d}{dx}` is an operator on what follows,
        `\\frac{dy}{dx}` is Derivative(y, x) (the upper text after its `d`, parsed again)."""
        self.take()
        upper_at = self.pos
        upper = self.frac_arg()
        upper_span = (upper_at + 1, self.pos - 1) if self.tokens.get(upper_at)[0] == "{" else None
        lower_at = self.pos
        lower = self.frac_arg()
        lower_span = (lower_at + 1, self.pos - 1) if self.tokens.get(lower_at)[0] == "{" else None
        if upper_span and lower_span:
            derivative = self.derivative(upper_span, lower_span)
            if derivative is not None:
                return derivative
        return ("pow", lower, _MINUS_ONE) if upper == _ONE else ("mul", upper, ("pow", lower, _MINUS_ONE))

    def derivative(self, upper_span, lower_span):
        lower_toks = self.tokens.toks[lower_span[0]:lower_span[1]]
        upper_toks = self.tokens.toks[upper_span[0]:upper_span[1]]
        if len(lower_toks) == 1 and lower_toks[0][0] == "differential":
            wrt, head, operator = lower_toks[0][1][1:].lstrip(_WS).lstrip("\\"), "d", [("letter", "d")]
        elif len(lower_toks) == 2 and lower_toks[0] == ("symbol", "\\partial") and \
                lower_toks[1][0] in ("letter", "symbol"):
            wrt, head, operator = lower_toks[1][1].lstrip("\\"), "\\partial", [("symbol", "\\partial")]
        else:
            return None
        if upper_toks == operator:
            return ("dop", wrt)
        upper_text = self.tokens.source(*upper_span)
        if not upper_text.startswith(head) or (head != "d" and upper_toks[0][1] != head):
            return None
        try:
            return ("deriv", _LatexPrefixParser(upper_text[len(head):]).parse(), wrt)
        except _PARSE_ERRORS:
            return ("bad", "derivative of an unparsable expression")

    def frac_arg(self):
        if self.kind() == "digit":
            return ("num", Fraction(self.take()[1]))
        return self.braced()

    def func(self):
        kind, text = self.take()
        if kind == "sqrt":
            index = None
            if self.kind() == "[":
                index = self.group("]")
            base = self.braced()
            return ("pow", base, _HALF if index is None else ("pow", index, _MINUS_ONE))
        if kind == "overline":
            return ("fn", "conjugate", self.braced())
        if kind != "func":
            raise _Unsupported(text)  # \int, \sum, \prod, \lim
        start, max_digits = self.pos, None
        while True:  # a numeric script keeps as many digits as leave an argument: \log_28 = log_2(8)
            self.pos = start
            sub, sup, digits = self.scripts(max_digits)
            arg = self.attempt(False, self.paren_arg) if self.kind() == "(" else None
            if arg is None:
                arg = self.attempt(False, self.mp, True) if digits > 1 else self.mp(True)  # \sin 2x = sin(2x)
            if arg is not None:
                return _function(text[1:], arg, sub, sup)
            max_digits = digits - 1

    def scripts(self, max_digits):
        """(subexpr? supexpr? | supexpr? subexpr?), and the digit count of the last one if it is a bare number."""
        found, digits = {}, 0
        for _ in range(2):
            kind = self.kind()
            if kind not in ("_", "^") or kind in found:
                break
            at = self.pos + 1
            found[kind] = self.subscript(max_digits) if kind == "_" else self.script_digits(max_digits)
            digits = self.pos - at if all(t[0] == "digit" for t in self.tokens.toks[at:self.pos]) else 0
        return found.get("_"), found.get("^"), digits

    def script_digits(self, max_digits):
        self.take()
        return self.braced() if self.kind() == "{" else self.atom(max_digits)

    def paren_arg(self):
        """( func_arg ): only the first argument is used (\\sin(x, y) = sin(x))."""
        self.take()
        arg = self.nested(self.expr)
        while self.kind() == ",":
            self.take()
            self.nested(self.expr)
        self.expect(")")
        return arg


def _implicit_product(items):
    """convert_postfix_list: a right-nested product; an `x` between two constant factors is a times sign (2x3 = 6);
    a derivative operator applies to the rest (and fails at the end)."""
    if items[-1][0] == "dop":
        return ("bad", "derivative of nothing")
    node = items[-1]
    for i in range(len(items) - 2, -1, -1):
        item = items[i]
        if item[0] == "dop":
            node = ("deriv", node, item[1])
            continue
        if 0 < i and item == ("sym", "x") and items[i - 1][0] != "dop" and items[i + 1][0] != "dop" and \
                not _free(items[i - 1]) and not _free(items[i + 1]):
            continue
        node = ("mul", item, node)
    return node


def _function(name, arg, sub, sup):
    """convert_func: arc-functions renamed, logs with their base (\\lg: 10, \\log and \\ln: e), \\sin^{-1} = asin,
    other powers applied to the function."""
    if name.startswith("arc"):
        name = "a" + name[3:]
    elif name in ("arsinh", "arcosh", "artanh"):
        name = "a" + name[2:]
    if name in ("log", "lg", "ln"):
        base = sub if sub is not None else (("num", Fraction(10)) if name == "lg" else None)
        node = ("log", arg, base)
    else:
        if name in _TRIG and sup is not None and _constant_value(sup) == -1:
            name, sup = "a" + name, None
        node = ("fn", name, arg)
    if sup is not None and _constant_value(sup) != 0:
        node = ("pow", node, sup)
    return node


def _relation(op, lhs, rhs):
    """sympy's Eq / Ne / Lt / Le / Gt / Ge on the converted sides: evaluated when both are numbers; an inequality
    with a relation inside is a TypeError (`1<x<5` fails)."""
    nested = lhs[0] in ("rel", "bool") or rhs[0] in ("rel", "bool")
    if nested:
        if op in ("=", "!="):
            return ("rel", op, lhs, rhs)
        raise _Fatal("inequality of a relation")
    if lhs == rhs:
        return ("bool", op in ("=", "<=", ">="))
    if _free(lhs) or _free(rhs) or _has_infinity(lhs) or _has_infinity(rhs):
        return ("rel", op, lhs, rhs)
    try:
        a, b = _complex(lhs, {}), _complex(rhs, {})
    except _EVAL_ERRORS:
        return ("rel", op, lhs, rhs)
    if op in ("=", "!="):
        return ("bool", _close(a, b, 1e-12) == (op == "="))
    if abs(a.imag) > 1e-12 * abs(a) or abs(b.imag) > 1e-12 * abs(b):
        raise _Fatal("comparison of complex numbers")
    return ("bool", {"<": a.real < b.real, "<=": a.real <= b.real, ">": a.real > b.real, ">=": a.real >= b.real}[op])


# ----------------------------------------------------------------------------------------------------------------------
# Values of parsed expressions, and symbolic_equal (grader.py:276-329)
#
# sympy's rules, decided by evaluation instead of simplify: constants are equal when exactly equal or (outside
# relations) when float(N(a)) and float(N(b)) are within a relative 1e-4; expressions with symbols (sympy's are
# complex) when equal at sample points: exact rationals for rational functions, complex floats with principal
# branches otherwise, positive integers where factorials are involved. Relations: |lhs - rhs| of both equal.
# ----------------------------------------------------------------------------------------------------------------------

_EVAL_ERRORS = (ArithmeticError, ValueError, TypeError, KeyError, reward._NotExact, reward._TooBig)
_RATIONAL_POINTS = [Fraction(1013, 727), Fraction(-1811, 1153), Fraction(701, 1301), Fraction(-2311, 941),
                    Fraction(1279, 1871), Fraction(3109, 1429), Fraction(-887, 503), Fraction(1553, 2203)]
_COMPLEX_POINTS = [complex(0.6180, 0.3140), complex(-0.8731, 0.4123), complex(1.3133, -0.5571),
                   complex(-0.2719, -1.1171), complex(0.9421, 1.3307), complex(-1.4412, -0.2873),
                   complex(0.4567, -0.9876), complex(1.7789, 0.6543)]
_INTEGER_POINTS = [7, 11, 5, 13, 9, 17, 6, 19]
_CMATH = {"sin": cmath.sin, "cos": cmath.cos, "tan": cmath.tan, "csc": lambda z: 1 / cmath.sin(z),
          "sec": lambda z: 1 / cmath.cos(z), "cot": lambda z: 1 / cmath.tan(z), "asin": cmath.asin,
          "acos": cmath.acos, "atan": cmath.atan, "acsc": lambda z: cmath.asin(1 / z),
          "asec": lambda z: cmath.acos(1 / z),
          "acot": lambda z: cmath.atan(1 / z), "sinh": cmath.sinh, "cosh": cmath.cosh, "tanh": cmath.tanh,
          "asinh": cmath.asinh, "acosh": cmath.acosh, "atanh": cmath.atanh, "exp": cmath.exp, "abs": abs,
          "conjugate": lambda z: z.conjugate()}


def _children(node):
    for child in node[1:]:
        if isinstance(child, tuple) and child:
            if isinstance(child[0], str):
                yield child
            else:
                yield from child


def _walk(node):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(_children(n))


def _free(node):
    """Names of the free symbols (as sympy's .atoms(Symbol): undefined functions' names are not symbols)."""
    return {n[1] for n in _walk(node) if n[0] == "sym"}


def _has_kind(node, kinds):
    return any(n[0] in kinds or (n[0] == "fn" and n[1] in kinds) for n in _walk(node))


def _has_infinity(node):
    return _has_kind(node, ("oo",))


def _exact(node, env, rational_only=False):
    """Exact value as a Fraction (reward.py's size-capped exact arithmetic); reward._NotExact where it is not
    rational. rational_only: integer powers only (so that agreement at real points proves an identity)."""
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "sym":
        return env[node[1]]
    if kind == "neg":
        return -_exact(node[1], env, rational_only)
    if kind in ("add", "mul"):
        a, b = _exact(node[1], env, rational_only), _exact(node[2], env, rational_only)
        value = a + b if kind == "add" else a * b
        if value.numerator.bit_length() + value.denominator.bit_length() > 2 * reward.MAX_POW_BITS:
            raise reward._TooBig("intermediate value")
        return value
    if kind == "pow":
        base, power = _exact(node[1], env, rational_only), _exact(node[2], env, rational_only)
        if power.denominator != 1 and (rational_only or base < 0):  # principal complex roots of negatives
            raise reward._NotExact("root")
        return reward._exact_pow(base, power)
    if rational_only:
        raise reward._NotExact(kind)
    if kind == "fn" and node[1] in ("abs", "floor", "ceiling", "conjugate", "factorial"):
        x = _exact(node[2], env)
        if node[1] == "factorial":
            if x.denominator != 1 or x < 0 or x > reward.MAX_FACTORIAL:
                raise reward._NotExact("factorial")
            return Fraction(math.factorial(int(x)))
        return {"abs": abs, "floor": lambda v: Fraction(math.floor(v)), "ceiling": lambda v: Fraction(math.ceil(v)),
                "conjugate": lambda v: v}[node[1]](x)
    if kind == "binom":
        n, k = _exact(node[1], env), _exact(node[2], env)
        if n.denominator != 1 or k.denominator != 1 or not 0 <= n <= reward.MAX_FACTORIAL:
            raise reward._NotExact("binomial")
        return Fraction(math.comb(int(n), int(k)) if k >= 0 else 0)
    if kind == "log":
        base = None if node[2] is None else _exact(node[2], env)  # None: natural log, rational only at 1
        return reward._exact_log(base, _exact(node[1], env))
    if kind == "deriv" and node[2] not in _free(node[1]):
        return Fraction(0)
    raise reward._NotExact(kind)


def _z(v):
    """No signed zeros: sympy's -4 is exactly real, so sqrt(-4) = 2i, never -2i."""
    return complex(v.real + 0.0, v.imag + 0.0)


def _pseudo_function(name, args):
    """An undefined function f(x): a fixed, generic analytic function of its arguments, so f(x) = f(x) and
    f(x) != f(2x)."""
    seed = sum(ord(c) for c in name) % 89 + 11
    return cmath.exp(sum(a * (0.37 + 0.11 * k) for k, a in enumerate(args)) / seed) * seed + sum(args)


def _complex(node, env):
    """Complex float value with sympy's principal branches; raises on poles, domain errors and overflow."""
    kind = node[0]
    if kind == "num":
        return complex(float(node[1]))
    if kind == "sym":
        return env[node[1]]
    if kind == "const":
        return complex(math.pi if node[1] == "pi" else math.e)
    if kind == "neg":
        return -_complex(node[1], env)
    if kind in ("add", "mul"):
        a, b = _complex(node[1], env), _complex(node[2], env)
        return a + b if kind == "add" else a * b
    if kind == "pow":
        base, power = _z(_complex(node[1], env)), _complex(node[2], env)
        if abs(power) > 1e6 and abs(base) != 1:
            raise OverflowError("huge power")
        return base ** power
    if kind == "fn":
        x = _z(_complex(node[2], env))
        if node[1] in ("floor", "ceiling"):  # sympy: floor(a + bi) = floor(a) + floor(b) i
            rounding = math.floor if node[1] == "floor" else math.ceil
            return complex(rounding(x.real), rounding(x.imag))
        if node[1] == "factorial":
            if x.imag != 0:
                raise ValueError("factorial of a complex number")
            return complex(math.gamma(x.real + 1))
        return complex(_CMATH[node[1]](x))
    if kind == "log":
        x = cmath.log(_z(_complex(node[1], env)))
        return x if node[2] is None else x / cmath.log(_z(_complex(node[2], env)))
    if kind == "binom":
        n, k = _complex(node[1], env), _complex(node[2], env)
        if n.imag or k.imag:
            raise ValueError("binomial of a complex number")
        return complex(math.gamma(n.real + 1) / (math.gamma(k.real + 1) * math.gamma(n.real - k.real + 1)))
    if kind == "ufn":
        return _pseudo_function(node[1], [_complex(a, env) for a in node[2]])
    if kind == "deriv":  # d/dt by a five-point stencil; 0 when t does not occur (sympy's doit in simplify)
        expr, t = node[1], node[2]
        if t not in env:
            return 0j
        h, at = 1e-3, env[t]
        f = [_complex(expr, dict(env, **{t: at + k * h})) for k in (-2, -1, 1, 2)]
        return (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * h)
    raise ValueError(kind)  # oo, relations


def _close(a, b, tol):
    return a == b or abs(a - b) <= tol * max(abs(a), abs(b))


def _finite(v):
    return math.isfinite(v.real) and math.isfinite(v.imag)


def _as_float(x):
    try:
        return float(x)
    except OverflowError:
        return math.inf if x > 0 else -math.inf


def _constant_value(node):
    """The exact value of a constant expression, else None."""
    try:
        return _exact(node, {})
    except _EVAL_ERRORS:
        return None


def _constants_equal(a, b, numeric):
    """a.equals(b) for two constants; with numeric, also float(N(a)) vs float(N(b)) within a relative 1e-4."""
    x, y = _constant_value(a), _constant_value(b)
    if x is not None and y is not None:
        return x == y or (numeric and math.isclose(_as_float(y), _as_float(x), rel_tol=1e-4))
    try:
        x, y = _complex(a, {}), _complex(b, {})
    except _EVAL_ERRORS:
        return False
    if not (_finite(x) and _finite(y)):
        return False
    if _close(x, y, 1e-10):
        return True
    real = abs(x.imag) <= 1e-12 * abs(x) and abs(y.imag) <= 1e-12 * abs(y)
    return numeric and real and math.isclose(y.real, x.real, rel_tol=1e-4)


def _identity(a, b, names):
    """Equal as functions of complex symbols: at exact rational points (rational functions), at positive integers
    (factorials), else at complex points; at least two points must be defined."""
    factorial = _has_kind(a, ("factorial", "binom")) or _has_kind(b, ("factorial", "binom"))
    for points, rational_only in ((_RATIONAL_POINTS, True), (_INTEGER_POINTS, False)):
        if rational_only == factorial:
            continue
        verdicts = []
        try:
            for j in range(4):
                env = {n: Fraction(points[(3 * k + j) % len(points)]) for k, n in enumerate(names)}
                try:
                    verdicts.append(_exact(a, env, rational_only) == _exact(b, env, rational_only))
                except ZeroDivisionError:
                    continue
        except _EVAL_ERRORS:
            verdicts = []
        if len(verdicts) >= 2:
            return all(verdicts)
    defined = 0
    for j in range(5):
        env = {n: _COMPLEX_POINTS[(3 * k + j) % len(_COMPLEX_POINTS)] for k, n in enumerate(names)}
        try:
            x, y = _complex(a, env), _complex(b, env)
        except _EVAL_ERRORS:
            continue
        if not (_finite(x) and _finite(y)):
            continue
        if not _close(x, y, 1e-9) and abs(x - y) > 1e-12:
            return False
        defined += 1
    return defined >= 2


def _extended(node):
    """Real value of a constant expression with infinities (float arithmetic: oo - oo is nan)."""
    kind = node[0]
    if kind == "oo":
        return math.inf
    if kind == "num":
        return _as_float(node[1])
    if kind == "const":
        return math.pi if node[1] == "pi" else math.e
    if kind == "neg":
        return -_extended(node[1])
    if kind in ("add", "mul", "pow"):
        a, b = _extended(node[1]), _extended(node[2])
        return a + b if kind == "add" else (a * b if kind == "mul" else a ** b)
    raise ValueError(kind)


def _expr_equal(a, b, numeric):
    if a == b:
        return True
    if _has_infinity(a) or _has_infinity(b):
        try:
            x, y = _extended(a), _extended(b)
        except _EVAL_ERRORS:
            return False
        return x == y or (numeric and math.isclose(x, y, rel_tol=1e-4))
    names = sorted(_free(a) | _free(b))
    if not names and not (_has_kind(a, ("ufn",)) or _has_kind(b, ("ufn",))):
        return _constants_equal(a, b, numeric)
    return _identity(a, b, names)


def _relations_equal(a, b):
    """(|lhs - rhs|).equals(...) of two relations, whatever their kinds: x<5 equals x>5 (eval.md §5.11)."""
    sides = (a[2], a[3], b[2], b[3])
    if any(side[0] in ("rel", "bool") for side in sides):
        return False
    diff = lambda lhs, rhs: ("fn", "abs", ("add", lhs, _negate(rhs)))  # noqa: E731
    return _expr_equal(diff(a[2], a[3]), diff(b[2], b[3]), numeric=False)


_PY_TOKEN_RE = re.compile(r"\s*(?:(?P<num>(?:\d(?:_?\d)*)?\.\d(?:_?\d)*(?:[eE][-+]?\d+)?|\d(?:_?\d)*\.(?:[eE][-+]?\d+)?"
                          r"|\d(?:_?\d)*[eE][-+]?\d+|[1-9](?:_?\d)*|0(?:_?0)*)(?![\w.])|(?P<name>[^\W\d]\w*)"
                          r"|(?P<op>\*\*|[-+*/(),\[\]{}!~]))")
_PY_KEYWORDS = frozenset("and as assert async await break class continue def del elif else except finally for from "
                         "global if import in is lambda nonlocal not or pass raise return try while with yield None "
                         "True False".split())


class _PythonExpr:
    """What sympy's parse_expr (standard transformations) makes of a string parse_latex rejects, for the cases that
    decide verdicts: numbers as Python reads them (`.5`, `5.`, `3.888e-01`; `025` is an error), names, + - * / **,
    `!`, calls f(x), and tuples (with or without parentheses), lists and sets: `2400,1350,864+1` is the tuple
    (2400, 1350, 865) and `{1,2}` equals `{2,1}`. Anything else (`^`, `%`, comparisons, implicit products): None."""

    def __init__(self, s):
        self.toks, at = [], 0
        while at < len(s):
            m = _PY_TOKEN_RE.match(s, at)
            if not m:
                if s[at:].strip():
                    raise _Syntax("python token")
                break
            kind = m.lastgroup
            text = m.group(kind)
            if kind == "name" and text in _PY_KEYWORDS:
                raise _Syntax("keyword")
            self.toks.append((kind, text))
            at = m.end()
        self.pos = 0

    def peek(self):
        return self.toks[self.pos] if self.pos < len(self.toks) else ("eof", "")

    def take(self, text=None):
        tok = self.peek()
        if tok[0] == "eof" or (text is not None and tok[1] != text):
            raise _Syntax("python syntax")
        self.pos += 1
        return tok

    def parse(self):
        node = self.items(("eof", ""))
        if self.pos != len(self.toks):
            raise _Syntax("python trailing tokens")
        return node

    def items(self, closer):
        """expr (, expr)* [,] -> one expression, or a tuple when there is a comma."""
        if self.peek()[1] == closer[1] and closer[0] == "op":
            return ("py", "tuple", ())
        values, comma = [self.arith()], False
        while self.peek() == ("op", ","):
            self.take()
            comma = True
            if self.peek() == closer:
                break
            values.append(self.arith())
        return ("py", "tuple", tuple(_py_canonical(v) for v in values)) if comma else values[0]

    def arith(self):
        node = self.term()
        while self.peek() in (("op", "+"), ("op", "-")):
            op = self.take()[1]
            rhs = self.term()
            node = ("add", node, rhs if op == "+" else _negate(rhs))
        return node

    def term(self):
        node = self.factor()
        while self.peek() in (("op", "*"), ("op", "/")):
            op = self.take()[1]
            rhs = self.factor()
            node = ("mul", node, rhs if op == "*" else ("pow", rhs, _MINUS_ONE))
        return node

    def factor(self):
        if self.peek() in (("op", "+"), ("op", "-")):
            op = self.take()[1]
            inner = self.factor()
            return inner if op == "+" else _negate(inner)
        if self.peek() == ("op", "~"):  # Python's bitwise not: ~3 is -4
            self.take()
            value = _constant_value(self.factor())
            if value is None or value.denominator != 1:
                raise _Syntax("~ of a non-integer")
            return ("num", -value - 1)
        node = self.primary()
        if self.peek() == ("op", "**"):
            self.take()
            node = ("pow", node, self.factor())
        return node

    def primary(self):
        kind, text = self.take()
        if kind == "num":
            node = ("num", Fraction(text.replace("_", "")))
        elif kind == "name":
            node = ("sym", text)
            if self.peek() == ("op", "("):
                self.take()
                args = self.items(("op", ")"))
                self.take(")")
                node = ("ufn", text, args[2] if args[0] == "py" else (args,))
        elif text in ("(", "[", "{"):
            closer = {"(": ")", "[": "]", "{": "}"}[text]
            inner = self.items(("op", closer))
            self.take(closer)
            if text == "(":
                node = inner
            else:
                values = inner[2] if inner[0] == "py" and inner[1] == "tuple" else (_py_canonical(inner),)
                if text == "{" and not values:
                    raise _Syntax("dict")
                node = ("py", "list", values) if text == "[" else ("py", "set", frozenset(values))
        else:
            raise _Syntax("python atom")
        while self.peek() == ("op", "!"):
            self.take()
            node = ("fn", "factorial", node)
        return node


def _py_canonical(node):
    """sympy evaluates parse_expr's results: constants compare by value inside tuples and sets."""
    if node[0] == "py":
        return node
    value = _constant_value(node)
    return ("num", value) if value is not None else node


def _python_expr(s):
    if len(s) > MAX_PARSE_CHARS:
        return None
    try:
        return _PythonExpr(s).parse()
    except (_Syntax, ValueError, ZeroDivisionError, RecursionError):
        return None


_MATRIX_START = ("\\begin{pmatrix}", "\\begin{bmatrix}")


_L2S_SPACES = ("\\displaystyle", "\\qquad", "\\quad", "~", "\\,", "$")  # latex2sympy2.py:66-70 blanks these first
_PLAIN_NUMBER_RE = re.compile(r"[-+]?\d+(?:\.\d+)?")


def _latex2sympy_lite(s):
    """The latex2sympy results that decide verdicts where parse_latex and parse_expr fail (observed with the
    vendored latex2sympy2 1.9.0, which first blanks \\displaystyle, \\quad, `~`, `\\,` and `$`): a matrix
    (followed by nothing or by `.`); a `{...}` / `[...]` list of items separated by `,` or `;` (whatever follows);
    a top-level list `a,b`; a `{x}` group, a number with leading zeros (`\\displaystyle025` is 25) and a string
    that only its blanks made unparsable (`-13x+~3`), as scalars. None otherwise: its own grammar (\\pi and e as
    constants, products with matrices, `=` as an assignment or an equation to solve, ...) is not modelled."""
    if not s.isascii() or len(s) > MAX_PARSE_CHARS:  # its lexer reads the whole string: an unknown character fails it
        return None
    blanked = s
    for blank in _L2S_SPACES:
        blanked = blanked.replace(blank, " ")
    text = blanked.strip()
    for opener in _MATRIX_START:
        if text.startswith(opener):
            closer = "\\end{" + opener[7:]
            end = text.find(closer, len(opener))
            if end < 0 or text[end + len(closer):].strip()[:1] not in ("", "."):
                return None
            rows = [r for r in text[len(opener):end].split("\\\\") if r.strip()]
            cells = [[_l2s_item(c) for c in r.split("&")] for r in rows]
            if not cells or len({len(r) for r in cells}) != 1 or any(c is None for r in cells for c in r):
                return None
            return ("matrix", tuple(tuple(r) for r in cells))
    if text[:1] in ("{", "["):
        depth = 0
        for i, ch in enumerate(text):
            depth += {"{": 1, "[": 1, "}": -1, "]": -1}.get(ch, 0)
            if depth == 0:
                if i == len(text) - 1 or text[0] == "[" or "," in text[1:i] or ";" in text[1:i]:
                    return _l2s_list(text[1:i], group=text[0] == "{")
                break
    parts = _split_top_commas(text.replace(";", ","))
    if len(parts) > 1:
        return _l2s_list(text, group=False)
    if _PLAIN_NUMBER_RE.fullmatch(text) or blanked != s:
        return _l2s_item(text)
    return None


def _l2s_item(text):
    """One item as latex2sympy reads it: parse_latex's reading with \\pi and e as the constants (no relations)."""
    node = _latex_or_none(text)
    return None if node is None else _with_constants(node)


def _with_constants(node):
    """The symbols pi and e as latex2sympy's constants pi and E."""
    if node[0] == "sym" and node[1] in ("pi", "e"):
        return ("const", "pi" if node[1] == "pi" else "E")
    if node[0] in ("num", "sym", "oo", "bool") or not any(True for _ in _children(node)):
        return node
    return tuple(_with_constants(c) if isinstance(c, tuple) and c and isinstance(c[0], str)
                 else tuple(_with_constants(x) for x in c) if isinstance(c, tuple) else c for c in node)


def _l2s_list(inner, group):
    parts = [_l2s_item(p) for p in _split_top_commas(inner.replace(";", ","))]
    if any(p is None for p in parts):
        return None
    if len(parts) == 1 and group:  # {025}: a group
        return parts[0] if _PLAIN_NUMBER_RE.fullmatch(inner.strip()) else None
    return ("py", "list", tuple(_py_canonical(p) for p in parts))


def _split_top_commas(s):
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(s):
        depth += {"{": 1, "[": 1, "(": 1, "}": -1, "]": -1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    return parts + [s[start:]]


def _latex_or_none(s):
    try:
        node = _LatexPrefixParser(s, lenient=True).parse()
    except _PARSE_ERRORS:
        return None
    return node if node[0] not in ("rel", "bool") else None


_PARSE_ERRORS = (_LexError, _Fatal, _Syntax, _Unsupported, RecursionError, ValueError, ZeroDivisionError,
                 reward._TooBig)
_parsed = {}


def _sympy_parse(s):
    """grader.py:277-286: the first of parse_latex, parse_expr, latex2sympy that succeeds, each tried on s with `\\\\`
    collapsed first, then on s; else the raw string."""
    if s in _parsed:
        return _parsed[s]
    texts = tuple(dict.fromkeys((s.replace("\\\\", "\\"), s)))
    node, leading_zero = None, False
    for text in texts:
        try:
            node = _LatexPrefixParser(text).parse()
            break
        except _PARSE_ERRORS as exc:
            leading_zero = leading_zero or "leading zero" in str(exc)
            continue
    for fallback in (_python_expr, _latex2sympy_lite):
        for text in texts:
            node = node or fallback(text)
    if node is None and leading_zero:  # latex2sympy reads `01+2\sqrt{3}`
        node = _l2s_item(texts[0])
    node = node or ("raw", s)
    if len(_parsed) > CACHE_SIZE:
        _parsed.clear()
    _parsed[s] = node
    return node


def _matrices_close(a, b):
    """Matrix.equals entry by entry, or the entries rounded to 3 decimals equal (grader.py:318-327)."""
    if len(a[1]) != len(b[1]) or len(a[1][0]) != len(b[1][0]):
        return False
    pairs = [(x, y) for ra, rb in zip(a[1], b[1]) for x, y in zip(ra, rb)]
    if all(_expr_equal(x, y, numeric=False) for x, y in pairs):
        return True
    values = [(_constant_value(x), _constant_value(y)) for x, y in pairs]
    return all(x is not None and y is not None and round(_as_float(x), 3) == round(_as_float(y), 3)
               for x, y in values)


def _symbolic_equal(a_str, b_str, budget):
    """grader.py:276-329: equal strings or objects; a.equals(b) / simplify(a - b) == 0; relations by |lhs - rhs|;
    constants within a relative 1e-4; matrices entry by entry. Anything unparsed only equals itself. Trees too
    deep for Python's recursion are unequal (sympy's simplify would run past the 3 s limit on them)."""
    budget.spend()
    a, b = _sympy_parse(a_str), _sympy_parse(b_str)
    try:
        if a == b:
            return True
        if a[0] == "matrix" and b[0] == "matrix":
            return _matrices_close(a, b)
        if a[0] in ("raw", "py", "bool", "matrix") or b[0] in ("raw", "py", "bool", "matrix"):
            return False
        if a[0] == "rel" or b[0] == "rel":
            return a[0] == b[0] and _relations_equal(a, b)
        return _expr_equal(a, b, numeric=True)
    except RecursionError:
        return False


# ----------------------------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------------------------

_verdicts = {}


def _grade_one(response, gold, data_name):
    code, pred = _prediction(response, data_name)
    first, second = _golds(str(gold), data_name)
    pred = _choice_fixup(pred, code, first)
    if pred is None:
        return False
    key = (pred, second)
    if key not in _verdicts:
        if len(_verdicts) > CACHE_SIZE:
            _verdicts.clear()
        try:
            _verdicts[key] = _math_equal(pred, second, _Budget(MAX_SYMBOLIC_CALLS))
        except _OutOfTime:  # a timeout counts as wrong (evaluate.py:46-49)
            _verdicts[key] = False
        except Exception as exc:  # a bug here must not stop an evaluation: reported, scored wrong
            print("paper_grader.py: %s grading %r against %r: %s" % (type(exc).__name__, pred[:200], second[:200],
                                                                    str(exc)[:200]), file=sys.stderr)
            _verdicts[key] = False
    return _verdicts[key]


def paper_grade(response, gold, benchmark):
    """True if the paper's evaluation pipeline scores `response` (the completion text) correct against `gold` (the
    gold string data/prepare.py writes) on `benchmark` (math500, aime24, amc23, minerva_math, olympiadbench, aime25,
    arc_e, arc_c)."""
    return _grade_one(str(response), gold, _data_name(benchmark))


def paper_grade_batch(responses, golds, benchmark, workers=None):
    """[paper_grade(r, g, benchmark) ...] for a batch: identical (response, gold) pairs and identical normalised
    (prediction, gold) pairs are graded once, and verdicts are cached across calls. `workers` is accepted for
    eval.py's call shape and unused: every comparison runs in-process with bounded work (module docstring)."""
    if len(responses) != len(golds):
        raise ValueError("paper_grade_batch: %d responses but %d golds" % (len(responses), len(golds)))
    data_name = _data_name(benchmark)
    seen = {}
    out = []
    for response, gold in zip(responses, golds):
        key = (response, gold)
        if key not in seen:
            seen[key] = _grade_one(str(response), gold, data_name)
        out.append(seen[key])
    return out


def _grade_file(path, benchmark):
    from data import prepare
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = prepare._json_object(path, n, line)  # names the file and line of bad JSON
            if "response" not in row or "answer" not in row:
                raise ValueError(f"{path} line {n}: needs fields response and answer")
            rows.append(row)
    verdicts = paper_grade_batch([r["response"] for r in rows], [str(r["answer"]) for r in rows], benchmark)
    print("accuracy by the paper's grader %.4f (%d/%d)" % (sum(verdicts) / max(1, len(rows)), sum(verdicts), len(rows)))


def _bench(data_dir="data"):
    """Responses/s on MATH500: every gold in four answer forms (boxed, "The answer is", a Minerva-less `$..$` then a
    box, "final answer is"), half of them wrong, after ~1,100 characters of reasoning; cold (empty caches), then
    warm (the same batch again)."""
    import time
    from data import prepare
    forms = ("\\boxed{%s}", "The answer is %s.", "So we get $%s$ and finally \\boxed{%s}", "Thus the final answer is %s")
    responses, golds = [], []
    for k, item in enumerate(prepare.load_benchmark("math500", data_dir)):
        for j, form in enumerate(forms):
            answer = item["answer"] + ("1" if (k + j) % 2 else "")
            responses.append("Let us compute step by step. " * 40 + form % ((answer,) * form.count("%s")))
            golds.append(item["answer"])
    for label in ("cold", "warm"):
        start = time.perf_counter()
        verdicts = paper_grade_batch(responses, golds, "math500")
        seconds = time.perf_counter() - start
        print(f"{label}: {len(responses)} responses in {seconds:.2f} s = {len(responses) / seconds:,.0f} responses/s "
              f"({sum(verdicts)} right)")


if __name__ == "__main__":
    if sys.argv[1:] == ["--bench"]:
        _bench()
        sys.exit(0)
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    try:
        _grade_file(sys.argv[1], sys.argv[2])
    except (ValueError, OSError) as exc:
        sys.exit(f"paper_grader.py: {exc}")
