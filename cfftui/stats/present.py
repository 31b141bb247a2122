"""Formatted views of an Analysis: display tables with pinned number formats, Markdown and booktabs LaTeX."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import polars as pl

from cfftui.stats.analysis import Analysis, format_p

MISSING = "n/a"


def fmt_fixed(x: float | None, decimals: int = 2) -> str:
    """Fixed decimals; '∞' for infinity, 'n/a' for missing."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return MISSING
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    text = f"{x:.{decimals}f}"
    return "0." + "0" * decimals if text.startswith("-") and float(text) == 0 and decimals else (
        "0" if text in ("-0", "+0") else text)


def fmt_sig(x: float | None, digits: int = 3) -> str:
    """`digits` significant digits in fixed notation (exponent only outside 1e-4 .. 1e6)."""
    if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
        return fmt_fixed(x)
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    if magnitude < -4 or magnitude >= 6:
        return f"{x:.{digits - 1}e}"
    return fmt_fixed(x, max(0, digits - 1 - magnitude))


def fmt_ci(lo: float | None, hi: float | None, decimals: int = 2) -> str:
    return f"[{fmt_fixed(lo, decimals)}, {fmt_fixed(hi, decimals)}]"


def fmt_percent(x: float | None) -> str:
    return MISSING if x is None else f"{100 * x:.1f}%"


@dataclass(frozen=True)
class DisplayTable:
    """A table as text cells: what Markdown, LaTeX and the terminal all render."""

    name: str
    title: str
    columns: list[str]
    align: str
    """One of 'l' or 'r' per column."""
    rows: list[list[str]]
    note: str


def _metric_title(analysis: Analysis) -> str:
    names = {"top1": "test top-1 accuracy", "top5": "test top-5 accuracy"}
    name = names.get(analysis.metric, analysis.metric)
    return f"{name} (%)" if analysis.unit == "%" else name


def _value_digits(analysis: Analysis) -> int:
    return 2 if analysis.unit == "%" else 4


def _cells(analysis: Analysis) -> DisplayTable:
    t = analysis.tables["cells"]
    d = _value_digits(analysis)
    rows = [[*(str(r[c]) for c in analysis.factors), str(r["n"]),
             f"{fmt_fixed(r['mean'], d)} ± {fmt_fixed(r['sd'], d)}", fmt_ci(r["ci_low"], r["ci_high"], d),
             fmt_sig(r["variance"]), fmt_fixed(r["median"], d),
             f"{fmt_fixed(r['min'], d)}–{fmt_fixed(r['max'], d)}"] for r in t.iter_rows(named=True)]
    return DisplayTable("cells", f"Per cell: {_metric_title(analysis)}",
                        [*analysis.factors, "n", "mean ± sd", "95% CI", "variance", "median", "min–max"],
                        "l" * len(analysis.factors) + "rrrrrr", rows, analysis.notes["cells"])


def _comparison(analysis: Analysis) -> DisplayTable:
    t = analysis.tables["comparison"]
    var = {(r["stratum"], r["level"]): r for r in analysis.tables["variance"].iter_rows(named=True)}
    a, b = analysis.levels
    d = _value_digits(analysis)
    rows = []
    for r in t.iter_rows(named=True):
        s = r["stratum"]
        rows.append([s, f"{r['n_a']}/{r['n_b']}", fmt_sig(var[(s, a)]["pooled_var"]),
                     fmt_sig(var[(s, b)]["pooled_var"]),
                     f"{fmt_fixed(r['variance_ratio'])} {fmt_ci(r['ci_low'], r['ci_high'])}",
                     fmt_ci(r["bca_low"], r["bca_high"]), fmt_fixed(r["naive_ratio"]),
                     format_p(r["brown_forsythe_p"]), format_p(r["levene_p"]),
                     fmt_fixed(r["mean_diff"], d), format_p(r["welch_p"])])
    diff = "Δ mean (pp)" if analysis.unit == "%" else "Δ mean"
    return DisplayTable("comparison", f"Variance comparison {a} / {b} ({analysis.compare})",
                        ["stratum", f"n {a}/{b}", f"pooled var {a}", f"pooled var {b}", "ratio [95% CI]",
                         "BCa 95% CI", "naive ratio", "Brown–Forsythe p", "Levene p", diff, "Welch p"],
                        "lrrrrrrrrrr", rows,
                        analysis.notes["comparison"] + f" {analysis.n_boot} resamples, seed {analysis.seed}.")


def _tests(analysis: Analysis) -> DisplayTable:
    rows = [[r["stratum"], r["test"], r["data"], fmt_fixed(r["statistic"], 3), str(r["df1"]), str(r["df2"]),
             format_p(r["p"])] for r in analysis.tables["tests"].iter_rows(named=True)]
    return DisplayTable("tests", "Variance tests", ["stratum", "test", "on", "W", "df1", "df2", "p"],
                        "lllrrrr", rows, analysis.notes["tests"])


def _anova(analysis: Analysis, name: str, title: str) -> DisplayTable:
    rows = [[r["term"], str(r["df"]), fmt_sig(r["sum_sq"], 4), fmt_sig(r["mean_sq"], 4),
             fmt_fixed(r["F"], 3) if r["F"] is not None else "", format_p(r["p"]) if r["p"] is not None else ""]
            for r in analysis.tables[name].iter_rows(named=True)]
    return DisplayTable(name, title, ["term", "df", "sum sq", "mean sq", "F", "p"], "lrrrrr", rows,
                        analysis.notes[name])


def _diagnostics(analysis: Analysis) -> DisplayTable:
    rows = [[r["cell"], str(r["n"]), r["dataset"] or MISSING, str(r["batch_size"] or MISSING),
             r["class_assumption"], fmt_sig(r["sum_p2"], 4), fmt_fixed(r["expected_positives"], 1),
             fmt_percent(r["positive_share"]), fmt_percent(r["car_l0"]), fmt_sig(r["grad_norm_l0"])]
            for r in analysis.tables["diagnostics"].iter_rows(named=True)]
    return DisplayTable("diagnostics", "Diagnostics per cell",
                        ["cell", "n", "dataset", "B", "classes", "Σp²", "positives/anchor", "share",
                         "CAR L0", "grad L0"], "lrlrlrrrrr", rows, analysis.notes["diagnostics"])


def _layers(analysis: Analysis) -> DisplayTable:
    rows = [[r["cell"], str(r["layer"]), fmt_percent(r["car"]), fmt_percent(r["car_final"]),
             fmt_sig(r["grad_norm"]), fmt_sig(r["grad_norm_final"])]
            for r in analysis.tables["layers"].iter_rows(named=True)]
    return DisplayTable("layers", "CAR and gradient norm per layer",
                        ["cell", "layer", "CAR", "CAR final", "grad norm", "grad norm final"], "lrrrrr", rows,
                        analysis.notes["layers"])


def _excluded(analysis: Analysis) -> DisplayTable:
    rows = [[r["cell"], str(r["seed"]), r["run_id"], r["state"], r["reason"]]
            for r in analysis.tables["excluded"].iter_rows(named=True)]
    return DisplayTable("excluded", "Excluded runs", ["cell", "seed", "run", "state", "reason"], "lrlll", rows,
                        analysis.notes["excluded"])


def display_tables(analysis: Analysis) -> list[DisplayTable]:
    """The paper tables in reading order (the excluded table only when runs were excluded)."""
    out = [_cells(analysis), _comparison(analysis), _tests(analysis)]
    if "anova_means" in analysis.tables:
        out.append(_anova(analysis, "anova_means", f"Two-way ANOVA of {_metric_title(analysis)}"))
        out.append(_anova(analysis, "anova_dispersion", "Dispersion ANOVA (absolute within-cell residuals)"))
    out += [_diagnostics(analysis), _layers(analysis)]
    if analysis.tables["excluded"].height:
        out.append(_excluded(analysis))
    return out


def settings_line(analysis: Analysis) -> str:
    return (f"metric {analysis.metric}, compare {analysis.compare} ({' vs '.join(analysis.levels)}), "
            f"{analysis.n_boot} bootstrap resamples, seed {analysis.seed}")


# --- Markdown ----------------------------------------------------------------

def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(table: DisplayTable, warnings: list[str]) -> str:
    lines = [f"### {table.title}", "",
             "| " + " | ".join(_md_cell(c) for c in table.columns) + " |",
             "| " + " | ".join("---:" if a == "r" else ":---" for a in table.align) + " |"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    lines += ["", f"*{table.note}*"]
    lines += [f"> warning: {w}" for w in warnings]
    return "\n".join(lines) + "\n"


def markdown_report(analysis: Analysis) -> str:
    parts = [f"# {analysis.experiment}: variance analysis", "", f"**{analysis.headline()}**", "",
             settings_line(analysis), ""]
    if analysis.warnings:
        parts += [f"> warning: {w}" for w in analysis.warnings] + [""]
    for table in display_tables(analysis):
        parts.append(markdown_table(table, analysis.warnings))
    return "\n".join(parts)


# --- LaTeX -------------------------------------------------------------------

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "±": r"$\pm$", "×": r"$\times$", "–": "--", "Σ": r"$\Sigma$", "²": r"$^2$",
                  "Δ": r"$\Delta$", "∞": r"$\infty$", "<": r"$<$", ">": r"$>$", "√": r"$\surd$",
                  "−": "--", "·": r"$\cdot$", "≥": r"$\geq$"}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in _LATEX_SPECIAL))


def latex_escape(text: str) -> str:
    return _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group(0)], text)


def latex_table(analysis: Analysis, table: DisplayTable) -> str:
    label = f"tab:cff-{re.sub(r'[^A-Za-z0-9-]', '-', analysis.experiment)}-{table.name}"
    lines = [f"% cfftui: {analysis.experiment} / {table.name} (generated; booktabs)",
             r"\begin{table}[t]", r"\centering", r"\small",
             f"\\caption{{{latex_escape(table.title)}}}", f"\\label{{{label}}}",
             f"\\begin{{tabular}}{{{table.align}}}", r"\toprule",
             " & ".join(latex_escape(c) for c in table.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in table.rows]
    lines += [r"\bottomrule", r"\end{tabular}", "",
              r"\smallskip{\footnotesize " + latex_escape(table.note)]
    lines += [r"\\ Warning: " + latex_escape(w) for w in analysis.warnings]
    lines += ["}", r"\end{table}"]
    return "\n".join(lines) + "\n"


# --- macros ------------------------------------------------------------------

_ONES = ["Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten", "Eleven",
         "Twelve", "Thirteen", "Fourteen", "Fifteen", "Sixteen", "Seventeen", "Eighteen", "Nineteen"]
_TENS = ["", "", "Twenty", "Thirty", "Forty", "Fifty", "Sixty", "Seventy", "Eighty", "Ninety"]


def number_words(n: int) -> str:
    """128 -> 'OneHundredTwentyEight' (digit by digit past a million)."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + (_ONES[n % 10] if n % 10 else "")
    if n < 1000:
        return _ONES[n // 100] + "Hundred" + (number_words(n % 100) if n % 100 else "")
    if n < 1_000_000:
        return number_words(n // 1000) + "Thousand" + (number_words(n % 1000) if n % 1000 else "")
    return "".join(_ONES[int(c)] for c in str(n))


def macro_word(text: str) -> str:
    """'cifar10_2x2' -> 'CifarTenTwoByTwo', '0.5' -> 'ZeroPointFive': letters only, for \\newcommand names."""
    tokens = re.findall(r"\d+|[A-Za-z]+|\.", text)
    out = []
    for i, tok in enumerate(tokens):
        prev_digit = i > 0 and tokens[i - 1].isdigit()
        next_digit = i + 1 < len(tokens) and tokens[i + 1].isdigit()
        if tok.isdigit():
            out.append(number_words(int(tok)))
        elif tok == ".":
            out.append("Point" if prev_digit and next_digit else "")
        elif tok.lower() == "x" and prev_digit and next_digit:
            out.append("By")
        else:
            out.append(tok[:1].upper() + tok[1:])
    return "".join(out)


def _macro_p(p: float | None) -> str:
    text = format_p(p)
    return r"\ensuremath{<}" + text[2:] if text.startswith("<") else text


def macros(analysis: Analysis) -> list[tuple[str, str]]:
    """(name, value) for every headline number; names are letters only, unique per experiment."""
    prefix = "cff" + macro_word(analysis.experiment)
    d = _value_digits(analysis)
    out: list[tuple[str, str]] = []

    def add(name: str, value: str) -> None:
        out.append((prefix + name, value))

    for r in analysis.tables["comparison"].iter_rows(named=True):
        scope = "" if r["stratum"] == "all" else macro_word(r["stratum"].replace("=", " "))
        add(f"VarianceRatio{scope}", fmt_fixed(r["variance_ratio"]))
        add(f"VarianceRatio{scope}CILow", fmt_fixed(r["ci_low"]))
        add(f"VarianceRatio{scope}CIHigh", fmt_fixed(r["ci_high"]))
        add(f"VarianceRatio{scope}BCaLow", fmt_fixed(r["bca_low"]))
        add(f"VarianceRatio{scope}BCaHigh", fmt_fixed(r["bca_high"]))
        add(f"BrownForsytheP{scope}", _macro_p(r["brown_forsythe_p"]))
        add(f"LeveneP{scope}", _macro_p(r["levene_p"]))
        add(f"MeanDiff{scope}", fmt_fixed(r["mean_diff"], 1))
        add(f"WelchP{scope}", _macro_p(r["welch_p"]))
    for r in analysis.tables["variance"].filter(pl.col("stratum") == "all").iter_rows(named=True):
        level = macro_word(r["level"])
        add(f"Mean{level}", fmt_fixed(r["mean"], d))
        add(f"PooledSD{level}", fmt_fixed(r["pooled_sd"], d))
        add(f"Runs{level}", str(r["n_runs"]))
    diagnostics = analysis.tables["diagnostics"].iter_rows(named=True)
    for r, diag in zip(analysis.tables["cells"].iter_rows(named=True), diagnostics, strict=True):
        cell = macro_word(" ".join(str(r[c]) for c in analysis.factors))
        add(f"Mean{cell}", fmt_fixed(r["mean"], d))
        add(f"SD{cell}", fmt_fixed(r["sd"], d))
        add(f"Runs{cell}", str(r["n"]))
        add(f"CarLayerZero{cell}", fmt_fixed(100 * diag["car_l0"], 1) if diag["car_l0"] is not None else MISSING)
    add("Runs", str(sum(analysis.tables["cells"]["n"].to_list())))
    add("Resamples", str(analysis.n_boot))
    seen: dict[str, int] = {}
    unique = []
    for name, value in out:
        seen[name] = seen.get(name, 0) + 1
        unique.append((name if seen[name] == 1 else name + "X" * (seen[name] - 1), value))
    return unique


def macros_tex(analysis: Analysis) -> str:
    lines = [f"% cfftui macros for experiment {analysis.experiment} (generated; \\input them in the preamble)",
             f"% {latex_escape(analysis.headline())}"]
    lines += [f"\\newcommand{{\\{name}}}{{{latex_escape(value) if value != MISSING else 'n/a'}}}"
              if not value.startswith("\\ensuremath") else f"\\newcommand{{\\{name}}}{{{value}}}"
              for name, value in macros(analysis)]
    return "\n".join(lines) + "\n"


def as_jsonable(value: Any) -> Any:
    """Floats rounded to 10 significant digits, non-finite as None (JSON has no inf or nan)."""
    if isinstance(value, float):
        return float(f"{value:.10g}") if math.isfinite(value) else None
    return value
