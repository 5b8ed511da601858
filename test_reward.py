"""test_reward.py - tests for reward.py: truth-labelled grading table, extraction, adversarial
inputs (hangs, huge numbers), worker timeouts, threads, batching and the CLI.

Run:  python -m pytest -q test_reward.py      (CPU only, well under a minute)

Every (pred, gold, expected) row is labelled by mathematical truth, not by what the paper's graders
say; rows marked with eval.md §7 are the cases where the paper's eval/training graders are wrong.
"""
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import reward

CASES = [
    # --- pi_1 (gold 12.8), paper_run.md §3 ---
    ("12.8", "12.8", True), ("12.80", "12.8", True), (r"\frac{64}{5}", "12.8", True), ("64/5", "12.8", True),
    (r"v=12.8", "12.8", True), (r"12.8 \text{ mph}", "12.8", True), ("12.8 mph", "12.8", True),
    (r"12.8 \, \text{mph}", "12.8", True), ("13", "12.8", False), ("12.7", "12.8", False),
    (r"\sqrt[3]{2048}", "12.8", False), ("64/5.1", "12.8", False), ("12.699", "12.8", False),
    (r"\dfrac{64}{5}", "12.8", True), (r"12.8\text{ miles per hour}", "12.8", True), ("128", "12.8", False),
    ("1.28", "12.8", False), (r"2^{11/3}", "12.8", False), (r"\frac{128}{10}", "12.8", True),
    # --- pi_13 (gold 4/3), paper_run.md §3 (decided by truth) ---
    ("4/3", r"\frac{4}{3}", True), (r"\dfrac{4}{3}", r"\frac{4}{3}", True), (r"m=\frac{4}{3}", r"\frac{4}{3}", True),
    (r"\frac{8}{6}", r"\frac{4}{3}", True), ("1.333", r"\frac{4}{3}", False), (r"1.\overline{3}", r"\frac{4}{3}", True),
    (r"\frac{3}{4}", r"\frac{4}{3}", False), (r"1\frac{1}{3}", r"\frac{4}{3}", True),
    # --- pi_1209, pi_2 ---
    (r"-\frac{2023}{2024}", r"-\frac{2023}{2024}", True), (r"\frac{-2023}{2024}", r"-\frac{2023}{2024}", True),
    (r"\frac{2023}{2024}", r"-\frac{2023}{2024}", False), ("24", "24", True), ("24.0", "24", True), ("25", "24", False),
    # --- eval.md §7 false positives of the paper's eval grader: all False by truth ---
    ("7000", "70", False), ("0.7", "70", False), ("100", "1.0", False), ("0.01", "1.0", False),
    ("2.04", "204", False), ("15", "0.15", False), ("14917", "14916", False), ("100001", "100000", False),
    ("1112122_3", "1112112_3", False), ("6984", "69,84", False), ("84", "8,4", False), ("12", "1,2", False),
    ("32, 349", "32349", False), (r"\frac{32}{9}", r"\frac{32}{9},\frac12", False), ("1", "1,-2", False),
    ("5,2", "5,-2", False), ("2,-18,-1", "2,-1,-18", True), ("-1,2", "-1,2,-2", False), ("(-2,7)", "[-2,7]", False),
    ("(1,5]", "[1,5)", False), (r"(-\infty,2]\cup[3,\infty)", r"(-\infty,2)\cup(3,\infty)", False),
    ("x<5", "x>5", False), (r"x\le5", r"x\ge5", False), ("(c+5)(b+2)", "(a+5)(b+2)", False),
    ("(a-b)^2", "(a-b)(a+b)", False), (r"\text{west}", r"\text{east}", False), ("11a+c", "7 = 11a+c", False),
    (r"\frac{4}{5}", r"1\frac{4}{5}", False), (r"\frac45", r"1\frac45", False), (r"1\frac45", r"\frac95", True), (r"\frac{137}{2}", r"137\frac{1}{2}", False),
    # --- eval.md §7 false negatives: all True by truth ---
    ("x \\in [-2,7]", r"x \in [-2,7]", True), ("[-2,7]", r"x \in [-2,7]", True), (r"-2 \le x \le 7", r"x \in [-2,7]", True),
    ("864", r"864 \mbox{ inches}^2", True), ("15", r"15\mbox{ cm}^2", True), (r"\frac{3m}{2}-1", r"$\frac{3 m}{2}-1$", True),
    (r"\frac{ab}{2}", r"\frac{a b}{2}", True), ("East", r"\text{east}", True), ("east", r"\text{east}", True),
    ("1,-2", "-2,1", True), (r"1+\sqrt{19}, 1-\sqrt{19}", r"1 \pm \sqrt{19}", True), (r"4.5\times10^{33}", "4.5e33", True),
    (r"4.5 \cdot 10^{33}", "4.5e33", True), (r"1.3 \times 10^{-5}", "1.3e-5", True), ("0.000013", "1.3e-5", True),
    (r"0.\overline{3}", r"\frac{1}{3}", True), (r"\frac{9}{5}", r"1\frac{4}{5}", True), ("336", r"336^\circ", True),
    (r"336^{\circ}", "336", True), ("336°", "336", True), (r"\pi/2", "π/2", True), (r"\displaystyle\frac{1}{2}", "0.5", True),
    (r"\textbf{5}", "5", True), (r"\textnormal{5}", "5", True), (r"\cfrac{1}{2}", r"\frac12", True),
    ("1{,}000", "1000", True), (r"\approx 12.8", "12.8", True), (r"x \lt 5", "x<5", True), (r"x \gt 5", "(5,\\infty)", True),
    (r"x \le 5", r"(-\infty,5]", True), (r"\begin{pmatrix}1\\2\end{pmatrix}", "(1,2)", True), ("(k,n)=(2,4)", "(2,4)", True),
    (r"\text{an ellipse}", r"\text{ellipse}", True), (r"\sec^2 x", r"\frac{1}{\cos^2 x}", True),
    ("12,000,023", "12000023", True), (r"\sin(\pi/3)", r"\frac{\sqrt3}{2}", True), (r"\cos(\pi)", "-1", True),
    (r"5x-7y+11z=-4", r"5x-7y+11z=-4", True), (r"5x-7y+11z+4=0", r"5x-7y+11z=-4", True),
    # --- percent signs and short words ---
    (r"50\%", "0.5", True), ("50 percent", "0.5", True), (r"0.5 \text{ percent}", "0.005", True),
    (r"5\%", "0.5", False), (r"12.5\%", r"\frac18", True), (r"50\%", "0.05", False), ("0.5", "50", False),
    (r"\text{No}", r"\text{no}", True), ("NO", "no", True), ("no", "yes", False), ("No", "N", False),
    # --- numbers ---
    ("14916", "14916", True), ("123456789012345678901234567890", "123456789012345678901234567891", False),
    ("123456789012345678901234567890", "123456789012345678901234567890", True), (".5", r"\frac12", True),
    ("0.5", "1/2", True), ("1/2", "2", False), ("2", "1/2", False), ("-3", "3", False), ("+3", "3", True),
    ("3.0", "3", True), ("3.00", "3.0", True), ("025", "25", True), ("1.414", r"\sqrt{2}", False),
    ("0.333", r"\frac13", False), ("3.14", r"\pi", False), ("3.14159", r"\pi", False), (r"\frac{22}{7}", r"\pi", False),
    ("0.30000000000000004", "0.3", True), ("12.799999999999999", "12.8", True), ("0.333333333333333333", r"\frac13", True),
    ("1,000", "1000", True), ("1\\,000", "1000", True), ("1 000 000", "10^6", True), ("1,000,000", "1000000", True),
    ("58,500", "58500", True), (r"\$32,\!348", "32348", True), (r"\$5", "5", True), ("5 dollars", r"\$5", True),
    (r"50\%", "50", True), ("50%", r"50\%", True), ("0.5", r"50\%", True), ("5", r"50\%", False),  # 50% is 0.5
    ("1e-5", "0.00001", True), ("1E-5", "1e-5", True), ("2e3", "2000", True), ("4.5e33", "4.5e34", False),
    (r"4.5\times 10^{33}", r"4.5\times 10^{32}", False), (r"10^{33}", "1e33", True), (r"2^{10}", "1024", True),
    (r"2^{10}", "1023", False), ("7 3/4", r"\frac{31}{4}", True), ("7 3/4", "73/4", False), (r"-1\frac{1}{2}", "-1.5", True),
    (r"0.1\overline{6}", r"\frac16", True), (r"0.\overline{142857}", r"\frac17", True), (r"0.\overline{3}", "0.3", False),
    (r"5!", "120", True), (r"\binom{5}{2}", "10", True), (r"\binom{6}{3}", "10", False), (r"\sqrt{163.84}", "12.8", True),
    (r"\sqrt{12}", r"2\sqrt{3}", True), (r"\sqrt{12}", r"3\sqrt{2}", False), (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}", True),
    (r"\sqrt[3]{-8}", "-2", True), (r"\log_2 8", "3", True), (r"\log_4 8", r"\frac32", True), (r"\ln(e^2)", "2", True),
    (r"e^{i\pi}", "-1", True), (r"2\pi", r"\pi \cdot 2", True), (r"\frac{\pi}{2}", r"0.5\pi", True), (r"\pi^2", r"\pi", False),
    (r"\tan(\pi/4)", "1", True), (r"\sin 30^\circ", r"\frac12", True), (r"\cos^2 x", r"1-\sin^2 x", True),
    (r"\arctan 1", r"\frac{\pi}{4}", True), (r"\sqrt{2}+\sqrt{3}", r"\sqrt{5+2\sqrt{6}}", True), (r"\sqrt{2}+\sqrt{3}", r"\sqrt{5}", False),
    (r"|-3|", "3", True), (r"\left|x\right|", "|x|", True), (r"\lfloor 3.7 \rfloor", "3", True),
    # --- unicode look-alikes ---
    ("π", r"\pi", True), ("√2", r"\sqrt{2}", True), ("√12", r"2\sqrt3", True), ("−5", "-5", True), ("3×4", "12", True),
    ("3·4", "12", True), ("x ≤ 5", r"x \le 5", True), ("x ≥ 5", r"x\geq 5", True), ("１２", "12", True),
    ("12.8 ｍｐｈ", "12.8", True), ("2π", r"2\pi", True), ("x²", "x^2", True), ("−x²", "-x^{2}", True),
    # --- symbolic expressions ---
    ("y=2x+1", "y=1+2x", True), ("2x+1", "y=2x+1", True), ("y=2x+1", "y=2x-1", False),
    ("x-2y+z-1=0", "-x+2y-z+1=0", True), ("x-2y+z-1=0", "2x-4y+2z=2", True), ("x-2y+z-1=0", "x-2y+z+1=0", False),
    ("x^2-1", "(x-1)(x+1)", True), ("x^2+1", "(x+1)^2", False), ("(a+b)^2", "a^2+2ab+b^2", True),
    (r"\frac{x^2-1}{x-1}", "x+1", True), ("2n-2", "2(n-1)", True), ("n^2+1", "n^2-1", False),
    (r"(n-2) 2^{n}+1", r"n2^n-2^{n+1}+1", True), (r"2^{k-n}", r"\frac{2^k}{2^n}", True), (r"2^{k-n}", r"2^{n-k}", False),
    (r"\frac{3 m}{2}-1", r"1.5m-1", True), (r"\frac{a}{b}", r"\frac{b}{a}", False), ("ab", "ba", True),
    (r"\sqrt{x^2}", "x", True), (r"\frac{1}{2}x", r"\frac{x}{2}", True), ("3+4i", "4i+3", True), ("3+4i", "3-4i", False),
    ("(1+i)^2", "2i", True), ("-2 + 7i", "7i-2", True), (r"k=2 n-1", "2n-1", True), (r"f(x)=x-1", "x-1", True),
    (r"g(x)=x^2-2x+2", r"x^2-2x+2", True), (r"p - q", r"-q+p", True), (r"p - q", r"q - p", False),
    # --- tuples, intervals, sets ---
    ("(1,2)", "(1,2)", True), ("(1,2)", "(2,1)", False), ("(1,2)", "1,2", True), (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\pi/2)", True),
    (r"(3, \frac{\pi}{2})", r"\left( 3, \frac{\pi}{2} \right)", True), (r"(3, \pi)", r"\left( 3, \frac{\pi}{2} \right)", False),
    ("(1,2,3)", "(1,2)", False), ("[1,5]", "[1,5]", True), ("[1,5)", "[1,5)", True), ("(1,5)", "[1,5]", False),
    (r"(-\infty, 5)", "x<5", True), (r"(-\infty,5]", "x<5", False), (r"(5,\infty)", "x>5", True), ("x<5", "5>x", True),
    ("x<5", "x<6", False), ("2x<10", "x<5", True), ("-2x>-10", "x<5", True), (r"1<x<3", "(1,3)", True), (r"3>x>1", "(1,3)", True),
    (r"1 \le x < 3", "[1,3)", True), (r"1 \le x < 3", "(1,3]", False),
    (r"(-\infty,2]\cup[3,\infty)", r"[3,\infty)\cup(-\infty,2]", True), (r"x\le 2 \text{ or } x\ge 3", r"(-\infty,2]\cup[3,\infty)", True),
    (r"\{1,2,3\}", "3,2,1", True), (r"\{1,2\}", r"\{1,2,3\}", False), (r"\{1,2\}", r"\{2,1\}", True), (r"\emptyset", r"\varnothing", True),
    (r"\emptyset", r"\{0\}", False), (r"(-\infty,\infty)", r"\mathbb{R}", True), ("(2,32), (8,18)", "(8,18), (2,32)", True),
    ("(2,32), (8,18)", "(2,18), (8,32)", False), ("1,3,9,11", "11,9,3,1", True), ("1,3,9,11", "1,3,9", False),
    (r"x=2 \text{ or } x=3", "2,3", True), ("x=2, x=3", "3, 2", True), (r"\pm 2", "2,-2", True), (r"x=\pm 2", "-2,2", True),
    (r"1\pm\sqrt{2}", r"1+\sqrt2, 1-\sqrt2", True), (r"1\pm\sqrt{2}", r"1+\sqrt2", False), ("1,2", "(1,2]", False),
    (r"(2,12) \cup (12,102)", r"(2,12)\cup(12,102)", True), (r"(2,12) \cup (12,102)", "(2,102)", False),
    # --- matrices ---
    (r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{bmatrix}1&2\\3&4\end{bmatrix}", True),
    (r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{pmatrix}1&3\\2&4\end{pmatrix}", False),
    (r"\begin{pmatrix}1&2\end{pmatrix}", r"\begin{pmatrix}1\\2\end{pmatrix}", False),
    (r"\begin{pmatrix} 1/5 \\ -18/5 \end{pmatrix}", r"\begin{pmatrix} 0.2 \\ -3.6 \end{pmatrix}", True),
    (r"\left(\begin{array}{c} 1/5 \\ -18/5 \end{array}\right)", r"\begin{pmatrix} 1/5 \\ -18/5 \end{pmatrix}", True),
    (r"(0.2, -3.6)", r"\begin{pmatrix} 1/5 \\ -18/5 \end{pmatrix}", True), (r"(0.2, 3.6)", r"\begin{pmatrix} 1/5 \\ -18/5 \end{pmatrix}", False),
    # --- text and choices ---
    ("(C)", "C", True), (r"\text{(C)}", "C", True), ("C", r"\textbf{(C)}", True), ("(B)", "C", False), ("B", r"\text{(C)}", False),
    (r"\text{even}", "even", True), (r"\text{Even}", r"\text{odd}", False), ("Yes", r"\text{yes}", True), (r"\text{no}", "yes", False),
    (r"\text{the ellipse}", "ellipse", True), ("hyperbola", "parabola", False),
    # --- bases ---
    ("1112122_3", "1112122_3", True), ("1112122", "1112122_3", True), ("52_8", "52_8", True), ("52_8", "42", True),
    ("52_8", "53_8", False), ("1011_2", "11", True), ("1011_2", "1101_2", False),
    # --- empty / None / junk ---
    ("", "", False), ("", "5", False), ("5", "", False), (None, "5", False), ("   ", "5", False),
    (r"\text{}", "5", False), ("5", "5.", True), ("5.", "5", True),
    # --- lists are not their first element ---
    ("1", "1,2", False), ("1,2", "1", False), ("(1,2)", "1", False), (r"\frac{32}{9},\frac12", r"\frac{32}{9}", False),
    # --- more: degrees vs radians, set-builder, nested boxes, complex, identities, large integers ---
    (r"60^\circ", r"\frac{\pi}{3}", True), (r"\frac{\pi}{3}", r"60^\circ", True), (r"60^\circ", "60", True),
    (r"90^\circ", r"\frac{\pi}{3}", False), ("3 = x", "3", True), (r"\{x \mid x > 5\}", r"(5,\infty)", True),
    (r"\boxed{5}", "5", True), ("5 apples", "5", True), ("12 red marbles", "12", True), ("5 apples", "6", False),
    (r"\sqrt{-1}", "i", True), (r"\frac{1}{1+i}", r"\frac{1-i}{2}", True), (r"\ln 2+\ln 3", r"\ln 6", True),
    (r"\ln 2+\ln 3", r"\ln 5", False), ("100!", "99! \\cdot 100", True), (r"2^{100}", "1267650600228229401496703205376", True),
    (r"2^{100}", "1267650600228229401496703205377", False), ("-x^2", "(-x)^2", False), ("x^{-1}", "1/x", True),
    (r"\frac{1}{2}n(n+1)", r"\frac{n(n+1)}{2}", True), (r"\frac{x}{2}+\frac{y}{3}=1", "3x+2y=6", True),
    (r"\frac{x}{2}+\frac{y}{3}=1", "3x+2y=5", False), ("x^2+y^2=1", "y^2+x^2=1", True), ("y-1=2x", "y=2x+1", True),
    (r"\frac{1}{2} \text{ and } \frac{1}{3}", r"\frac13,\frac12", True), (r"\langle 1, 2 \rangle", "(1,2)", True),
    (r"0 \le x \le \pi", r"[0,\pi]", True), (r"[0, \pi)", r"[0,\pi]", False), (r"\sqrt{2}/2", r"\frac{\sqrt2}{2}", True),
    ("3\\times 10^8", "3e8", True), ("3\\times10^{8}", "300000000", True), (r"12.5\%", "12.5", True),
    ("x=5", "y=5", True), ("x+y=5", "5", False), ("10,000", "10000", True), ("6,000", "6", False),
    ("1,000.5", "1000.5", True), ("0", "-0", True), (r"\infty", r"\infty", True), (r"-\infty", r"\infty", False),
    (r"e^2", r"e \cdot e", True), (r"e^2", "7.389", False), (r"\frac{\sqrt{3}}{3}", r"\frac{1}{\sqrt3}", True),
    (r"5 \mathrm{~cm}", "5", True), (r"5\text{ m}", "5", True), ("12.8 m/s", "12.8", True),
    (r"\dfrac{1}{\sqrt{2}}", r"\frac{\sqrt2}{2}", True), (r"2\sqrt{2}", r"\sqrt{8}", True), (r"2\sqrt{2}", r"\sqrt{6}", False),
    (r"\sin^2 x", r"\sin x^2", False), (r"\sin 2x", r"2\sin x\cos x", True), (r"\cos 2x", r"1-2\sin^2 x", True),
    (r"\frac{\pi^{2}-9}{9}", r"\frac{\pi^2}{9}-1", True), (r"\frac{5 \pi}{4} \sqrt{17}", r"\frac{5\sqrt{17}\pi}{4}", True),
    (r"\frac{2016}{2017^{2}}", r"\frac{2016}{4068289}", True), (r"2021 \cdot 505 \cdot 337", "343986265", False),
    (r"2021 \cdot 505 \cdot 337", str(2021*505*337), True), (r"\frac{4 \cdot 999^{4}}{27}", str(4*999**4//27), True),
    (r"\frac{8}{\sqrt[3]{7}}", r"8 \cdot 7^{-1/3}", True), ("(1,7,103, 105), (3, 5, 101, 107)", "(3,5,101,107),(1,7,103,105)", True),
    (r"x=\frac{\pi}{6}+\pi k", r"\frac{\pi}{6}+k\pi", True), (r"\lambda_{\text {red}} / \sqrt{2}", r"\frac{\lambda_{red}}{\sqrt2}", True),
    ("(0,0),(1,1)", r"\{(0,0),(1,1)\}", True), (r"x \in \{1, 2\}", "1,2", True), ("2n", "2m", False),
    # --- more writings: fractions, units, identities, intervals, complex, choices, e-notation ---
 (r"\frac{2}{4}", r"\frac12", True), (r"-\frac{1}{2}", "-0.5", True), (r"\frac{-1}{2}", r"-\frac12", True), ("10/2", "5", True),
 (r"3\frac{1}{2}", "3.5", True), (r"3\frac{1}{2}", r"\frac{3}{2}", False), ("x=3.0", "3", True), ("(x-1)^2", "x^2-2x+1", True),
 ("2 \\cdot 3", "6", True), ("10^{-3}", "0.001", True), (r"2.5\times10^{-3}", "0.0025", True), (r"1.0\times 10^{3}", "1000", True),
 ("5e-7", r"5\times10^{-7}", True), (r"\frac{\sqrt{6}-\sqrt{2}}{4}", r"\sin 15^\circ", True), (r"\cos 36^\circ", r"\frac{1+\sqrt5}{4}", True),
 ("y=x^2", "x^2", True), (r"\alpha+\beta", r"\beta+\alpha", True), ("a^2+b^2", "b^2+a^2", True), (r"x^2+y^2=25", "x^2+y^2-25=0", True),
 (r"(0,\infty)", "x>0", True), (r"[2,\infty)", r"x\geq 2", True), (r"[2,\infty)", r"x> 2", False), ("x>0", "x\\ge 0", False),
 (r"\text{no solution}", r"\text{No Solution}", True), ("undefined", r"\text{undefined}", True), ("DNE", "dne", True),
 (r"\frac{1}{3}", "0.33", False), (r"\frac13", "0.3333", False), ("41.8", "41.79", False), ("0.022", r"\frac{11}{500}", True),
 (r"\frac{9}{19}", r"\frac9{19}", True), (r"\frac{3}{4}", r"\frac 34", True), (r"11\sqrt{2}", r"11\sqrt2", True), (r"\sqrt{130}", r"\sqrt{131}", False),
 ("0.35625", ".35625", True), (r"-2,0,2", "2,0,-2", True), ("3,4", "4,3", True), ("3,4", "3,4,4", False), ("3,3,4", "3,4,4", False),
 (r"\$1.50", "1.5", True), (r"1.50\text{ dollars}", r"\$1.5", True), (r"\frac{5}{2}\%", "2.5", True), (r"\frac{1}{2}\pi r^2", r"\frac{\pi r^2}{2}", True),
 (r"2\pi r", r"2r\pi", True), (r"\pi r^2", r"\pi r", False), ("12:00", "12:00", True), (r"\infty", r"+\infty", True),
 (r"(1,2)\cup(3,4)", r"(3,4)\cup(1,2)", True), (r"[1,2]\cup[3,4]", r"(1,2)\cup(3,4)", False), (r"(1, 2)", r"( 1 , 2 )", True),
 (r"\frac{x+1}{x-1}", r"\frac{1+x}{x-1}", True), (r"\frac{x+1}{x-1}", r"\frac{x-1}{x+1}", False), (r"\log_2 3", r"\frac{\ln 3}{\ln 2}", True),
 (r"\log_2 3", r"\log_3 2", False), (r"\sqrt[3]{2}", r"2^{1/3}", True), (r"\sqrt[4]{16}", "2", True), (r"e^{\ln 5}", "5", True),
 (r"\binom{n}{2}", r"\frac{n(n-1)}{2}", True), ("n!", "(n-1)!\\cdot n", True), (r"\frac{(n+1)!}{n!}", "n+1", True),
 (r"2^{n+1}-2", r"2(2^n-1)", True), (r"\dfrac{n(n+1)(2n+1)}{6}", r"\frac{2n^3+3n^2+n}{6}", True), ("4n^2", "(2n)^2", True),
 (r"\frac{\sqrt{3}}{2}", "0.866", False), (r"\frac{\sqrt{3}}{2}", r"\frac{\sqrt{3}}{2}i", False), ("1+i", "1-i", False), ("i", "-i", False),
 (r"(3, -1)", r"(3,-1)", True), (r"(3,-1)", r"(-1,3)", False), (r"\left(\frac12, -\frac32\right)", "(0.5,-1.5)", True),
 (r"A", r"\text{A}", True), (r"\textbf{(A)}", "A", True), (r"\mathrm{(E)}", "E", True), (r"\text{(E)}", "D", False),
 (r"x=1 \text{ and } y=2", "(1,2)", True), (r"3.6 \times 10^{6}", "3.6e6", True), (r"3.6 \times 10^{6}", "3.6e5", False),
 ("1.77e-6", r"1.77 \times 10^{-6}", True), ("2.7778e-6", "2.7778 \\times 10^{-6}", True), ("-1./3", r"-\frac13", True),
 (r"\frac{a M^{1 / 3}}{G M^{2 / 3}+b}", r"\frac{aM^{1/3}}{GM^{2/3}+b}", True), ("6630", "6,630", True), ("15000", "1.5 \\times 10^4", True),
]


@pytest.fixture(scope="module", autouse=True)
def warm_pool():
    """Start one worker first so timing assertions measure grading, not the sympy import."""
    reward.is_equiv(r"\cos(\pi/3)", r"\frac{1}{2}")
    yield


@pytest.mark.parametrize("pred,gold,expected", CASES)
def test_is_equiv_table(pred, gold, expected):
    assert reward.is_equiv(pred, gold) is expected


def test_table_is_large_and_balanced():
    assert len(CASES) >= 150
    assert sum(e for _, _, e in CASES) > 100 and sum(not e for _, _, e in CASES) > 100


def test_parent_and_worker_paths_both_used():
    """Most rows are decided without sympy; the ones needing it reach a worker and agree."""
    reward.reset_stats(clear_cache=True)
    for pred, gold, expected in CASES:
        assert reward.is_equiv(pred, gold) is expected
    s = reward.stats()
    assert s["symbolic"] > 10 and s["parent_decided"] > 200
    assert s["timeouts"] == 0 and s["errors"] == 0


def test_self_equality_of_well_formed_answers():
    golds = [g for _, g, _ in CASES if g.strip()] + [
        r"\left( 3, \frac{\pi}{2} \right)", r"-\frac{2023}{2024}", r"336^\circ", "27.0", r"x \in [-2,7]",
        r"864 \mbox{ inches}^2", r"4.5 \times 10^{33}", "1.3e-5", r"$\frac{3 m}{2}-1$", r"\text{east}",
        r"\begin{pmatrix} -1 & 0 \\ 0 & -1 \end{pmatrix}", r"$(1,1006),(3,331),(11,31)$", r"\$32,\!348",
        r"$x=\frac{1}{6} \pi+\pi k, \frac{1}{3} \pi+\pi k$", r"$N(n)=\left\lfloor\frac{2 n}{3}\right\rfloor+1$"]
    for g in golds:
        assert reward.is_equiv(g, g), g


# --- extraction ------------------------------------------------------------------------------

@pytest.mark.parametrize("response,expected", [
    (r"so the answer is \boxed{12.8}.", "12.8"),
    (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
    (r"\boxed{\frac{\sqrt{3}}{\left(2\right)}}", r"\frac{\sqrt{3}}{\left(2\right)}"),  # nested braces
    (r"\boxed{\{1,2\}}", r"\{1,2\}"),                                                 # escaped braces
    (r"\boxed {5}", "5"),
    (r"\fbox{7}", "7"),
    (r"$\boxed 5$.", "5"),                                                            # brace-less
    (r"first \boxed{1} then \boxed{2}", "2"),                                         # last wins
    (r"\boxed{1} and finally \boxed{12", None),                                       # last box unclosed
    ("no box here, the answer is 5", None),
    ("", None),
    (None, None),
    (r"\boxed", None),
])
def test_extract_answer(response, expected):
    assert reward.extract_answer(response) == expected


def test_extract_answer_is_linear_time():
    cases = ["x" * 200_000 + r"\boxed{" + "1" * 200_000 + "}",
             r"\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}",
             r"\boxed{" * 20_000,
             r"\boxed{12.8 " * 20_000]
    for response in cases:
        t0 = time.perf_counter()
        reward.extract_answer(response)
        assert time.perf_counter() - t0 < 0.5


# --- grade, format_reward, grade_batch, CLI -----------------------------------------------------

def test_grade_and_format_reward():
    assert reward.grade(r"... so \boxed{\frac{64}{5}}", "12.8") == 1.0
    assert reward.grade(r"... so \boxed{12.7}", "12.8") == 0.0
    assert reward.grade("... so the answer is 12.8", "12.8") == 0.0     # unboxed: no reward
    assert reward.grade(r"\boxed{}", "") == 0.0
    assert reward.grade(r"\boxed{4}", r"\boxed{4}") == 1.0              # a boxed gold is unwrapped
    assert reward.format_reward(r"\boxed{13}") == 1.0
    assert reward.format_reward(r"\boxed 13") == 1.0
    assert reward.format_reward(r"\boxed{}") == 0.0
    assert reward.format_reward(r"\boxed{13") == 0.0
    assert reward.format_reward("13") == 0.0


def _mixed_batch():
    answers = ["12.8", "12.80", r"\frac{64}{5}", r"12.8 \text{ mph}", "12.7", r"\sqrt[3]{2048}", "13",
               r"\frac{64}{5}(\sin^2 x+\cos^2 x)", r"\frac{64\sqrt2}{5\sqrt2}", r"10^{10^{10^{10}}}", "x^2+1"]
    responses = ["reasoning %d ... \\boxed{%s}" % (i, a) for i, a in enumerate(answers)] * 3
    responses += ["no box", r"unclosed \boxed{12.8"]
    golds = ["12.8"] * len(responses)
    responses += [r"\boxed{(1,5]}", r"\boxed{-2,1}", r"\boxed{\begin{pmatrix}1\\2\end{pmatrix}}"]
    golds += ["[1,5)", "1,-2", "(1,2)"]
    return responses, golds


def test_grade_batch_matches_grade():
    responses, golds = _mixed_batch()
    reward.reset_stats(clear_cache=True)
    batch = reward.grade_batch(responses, golds, workers=2)
    reward.reset_stats(clear_cache=True)
    single = [reward.grade(r, g) for r, g in zip(responses, golds)]
    assert batch == single
    assert batch[:11] == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    assert batch[-3:] == [0.0, 1.0, 1.0]


def test_grade_batch_dedupes_and_caches():
    responses, golds = _mixed_batch()
    reward.reset_stats(clear_cache=True)
    reward.grade_batch(responses, golds)
    first = reward.stats()
    reward.grade_batch(responses, golds)
    second = reward.stats()
    assert second["cache_hits"] - first["cache_hits"] >= len(responses) - 2  # all boxed ones
    assert second["symbolic"] == first["symbolic"]                            # nothing recomputed
    with pytest.raises(ValueError):
        reward.grade_batch(["a"], [])


def test_grade_batch_from_a_thread():
    responses, golds = _mixed_batch()
    expected = reward.grade_batch(responses, golds)
    out = {}

    def work():
        reward.reset_stats(clear_cache=True)
        out["scores"] = reward.grade_batch(responses, golds)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive() and out["scores"] == expected


def test_cli_grades_a_jsonl(tmp_path):
    path = tmp_path / "samples.jsonl"
    rows = [{"response": r"\boxed{12.80}", "answer": "12.8"}, {"response": r"\boxed{13}", "answer": "12.8"},
            {"response": r"\boxed{\frac{8}{6}}", "answer": r"\frac{4}{3}"}, {"response": "none", "answer": "1"}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, os.path.join(here, "reward.py"), str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "accuracy 0.5000 (2/4)" in out.stdout and "timeouts 0" in out.stdout


# --- adversarial inputs: fast, bounded, and the grader still works afterwards -----------------

ADVERSARIAL = [
    r"\boxed{10^{10^{10^{10}}}}", r"\boxed{9^{9^{9^{9}}}}", r"\boxed{2^{2^{20}}}", r"\boxed{1000000!}",
    r"\boxed{1e999999999}", r"\boxed{\binom{10^{9}}{5\cdot 10^{8}}}", r"\boxed{\pi^{10^{10}}}",
    r"\boxed{\sqrt{2}^{10^{10}}}", r"\boxed{e^{e^{e^{e^{e}}}}}", r"\boxed{" + "2000!" * 100 + "}",
    "\\boxed{" + "1" * 200_000 + "}",
    "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}",
    "\\boxed{" + "\\frac{1}{1+" * 60 + "2" + "}" * 60 + "}",
    "\\boxed{" + "\\sqrt{2+" * 60 + "2" + "}" * 60 + "}",
    "\\boxed{" + "\\frac{1}{" * 400 + "2" + "}" * 400 + "}",
    "\\boxed{" + "-" * 900 + "x}",
    "\\boxed{(" + "x+" * 300 + "1)^{200}}",
    "\\boxed{" + "\\sin(" * 40 + "x" + ")" * 40 + "}",
    "\\boxed{１２．８ ｍｐｈ}", "\\boxed{12.8\u00b0}", "\\boxed{−√２·π²}",
    "\\boxed{" * 5000,
    "\\boxed{" + ",".join(str(i) for i in range(300)) + "}",
]


@pytest.mark.parametrize("response", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_adversarial_inputs_are_bounded(response):
    for gold in ("12.8", r"\frac{\pi}{2}"):
        t0 = time.perf_counter()
        score = reward.grade(response, gold)
        assert time.perf_counter() - t0 < reward.TIMEOUT_S + 0.5
        assert score in (0.0, 1.0)
    assert reward.grade(r"\boxed{12.80}", "12.8") == 1.0
    assert reward.is_equiv(r"\sin(\pi/3)", r"\frac{\sqrt{3}}{2}")


def test_huge_powers_are_never_evaluated():
    reward.reset_stats(clear_cache=True)
    t0 = time.perf_counter()
    assert not reward.is_equiv(r"10^{10^{10^{10}}}", r"9^{9^{9^{9}}}")
    assert reward.is_equiv(r"10^{10^{10^{10}}}", r"10^{10^{10^{10}}}")
    assert time.perf_counter() - t0 < 0.5
    assert reward.stats()["too_big"] >= 1 and reward.stats()["symbolic"] == 0


def test_worker_timeout_is_counted_and_recovers():
    """A 39-term sum only sympy can confirm (~100 ms of evalf) under a 5 ms limit: killed."""
    slow = "+".join(r"\sqrt{x+%d}\sin(%dx)" % (i, i) for i in range(1, 40))
    reward.reset_stats(clear_cache=True)
    t0 = time.perf_counter()
    assert not reward.is_equiv(slow, slow + "+1-1", timeout_s=0.005)
    assert time.perf_counter() - t0 < 2.0
    assert reward.stats()["timeouts"] == 1
    assert reward.is_equiv(r"\cos(\pi/3)", r"0.5")      # the replacement worker answers
    assert reward.stats()["timeouts"] == 1
    assert reward.grade_batch([r"\boxed{\tan(\pi/4)}"] * 4, ["1"] * 4) == [1.0] * 4


def test_unicode_lookalikes():
    assert reward.is_equiv("−√２·π", r"-\sqrt{2}\pi")
    assert reward.is_equiv("x ≤ 3", r"(-\infty, 3]")
    assert reward.is_equiv("１２．８", "12.8")
    assert not reward.is_equiv("１２．７", "12.8")


def test_paper_bug_empty_prediction_never_matches():
    """eval.md §7 item 7: the paper's eval scored any prediction that normalised to empty as correct
    on MATH500 #97 (gold `\\text{east}`, which its unit list deleted)."""
    for response in ("I am not sure.", r"\boxed{}", r"\boxed{\text{}}", r"\boxed{ }"):
        assert reward.grade(response, r"\text{east}") == 0.0
    assert reward.grade(r"\boxed{\text{East}}", r"\text{east}") == 1.0


def test_paper_bug_minerva_sentence_does_not_beat_a_later_box():
    """eval.md §7 item 10: a retracted 'final answer is $..$. I hope' sentence won over later boxes."""
    response = ("The final answer is $5$. I hope it is correct. Wait, that is wrong. "
                r"Redoing the computation gives \boxed{7}.")
    assert reward.extract_answer(response) == "7"
    assert reward.grade(response, "7") == 1.0 and reward.grade(response, "5") == 0.0


def test_a_script_without_a_main_guard_still_gets_symbolic_verdicts(tmp_path):
    """Workers are separate interpreters running reward.py: the caller's __main__ is never re-imported."""
    script = tmp_path / "no_guard.py"
    script.write_text("import sys\nsys.path.insert(0, %r)\nimport reward\n"
                      "print(reward.is_equiv('\\\\sin(\\\\pi/3)', '\\\\frac{\\\\sqrt{3}}{2}'), reward.stats()['errors'])\n"
                      % str(Path(__file__).resolve().parent))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["True", "0"], out.stderr[-2000:]
