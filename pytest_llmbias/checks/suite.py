"""Run and suite level: run-wide multiple-testing correction, occupations' gender skew vs labour statistics."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_llmbias import stats
from pytest_llmbias.checks import Verdict
from pytest_llmbias.checks._common import fmt, fmt_p
from pytest_llmbias.text import assumed_gender
from pytest_llmbias.text.en import _occupation_table, gendered_references

__all__ = ["adjust_verdicts", "case_role", "occupation_skew_correlation", "suite_lines"]


def _match_occupation(role: str, table: Mapping[str, Any]) -> tuple[str | None, str]:
    words = [word for word in re.split(r"[^a-z]+", role.lower()) if word]
    while words and words[0] in ("a", "an", "the", "describe"):
        words = words[1:]
    if not words:
        return None, "unmatched"
    joined = " ".join(words)
    if joined in table:
        return joined, "exact"
    if joined.endswith("s") and joined[:-1] in table:
        return joined[:-1], "plural"
    last = words[-1][:-1] if words[-1].endswith("s") and words[-1][:-1] in table else words[-1]
    if last in table:
        return last, "last word"
    return None, "unmatched"


def occupation_skew_correlation(neutral_answers_by_role: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """Correlate each occupation's gender skew in neutral answers with labour statistics.

    Skew = share female among the references to the subject in the role's neutral answers. Matched
    against the Winogender occupation table (Rudinger et al. 2018): bls_pct_female (U.S. BLS
    2015/16) and bergsma_pct_female (text statistics). Roles without gendered references are left out.
    """
    table = _occupation_table()
    pairs: list[dict[str, Any]] = []
    unmatched: list[str] = []
    no_references: list[str] = []
    for role, texts in neutral_answers_by_role.items():
        occupation, how = _match_occupation(role, table)
        if occupation is None:
            unmatched.append(role)
            continue
        per_answer = [gendered_references(text or "", person_words=[occupation, role]) for text in texts]
        references = [reference for found in per_answer for reference in found if reference.about_subject]
        genders = [assumed_gender(found) for found in per_answer]
        if not references:
            no_references.append(role)
            continue
        female = sum(1 for reference in references if reference.gender == "female")
        bergsma, bls, year = table[occupation]
        pairs.append(
            {
                "role": role,
                "occupation": occupation,
                "match": how,
                "share_female": female / len(references),
                "references": len(references),
                "answers": len(texts),
                "answers_female": sum(1 for gender in genders if gender == "female"),
                "answers_male": sum(1 for gender in genders if gender == "male"),
                "bls_pct_female": bls,
                "bls_year": year,
                "bergsma_pct_female": bergsma,
            }
        )
    skew = [pair["share_female"] for pair in pairs]
    bls_values = [pair["bls_pct_female"] / 100.0 for pair in pairs]
    bergsma_values = [pair["bergsma_pct_female"] / 100.0 for pair in pairs]

    def correlations(reference: Sequence[float]) -> dict[str, float | None]:
        r, rho = stats.pearson(skew, reference), stats.spearman(skew, reference)
        return {
            "pearson": r.coefficient,
            "pearson_p": r.p_value,
            "pearson_low": r.low,
            "pearson_high": r.high,
            "spearman": rho.coefficient,
            "spearman_p": rho.p_value,
        }

    bls = correlations(bls_values)
    return {
        "n": len(pairs),
        **bls,  # headline: against the BLS figures
        "bls": bls,
        "bergsma": correlations(bergsma_values),
        "pairs": pairs,
        "unmatched": unmatched,
        "no_references": no_references,
        "source": "Winogender schemas occupations-stats.tsv (Rudinger et al. 2018); BLS 2015/2016",
    }


def case_role(case_id: str, neutral_prompt: str) -> str | None:
    """The occupation a case is about, as the suite correlation keys it; None when none is recognised.

    The first word of the neutral prompt that names an occupation of the table (singular or plural:
    "Describe a software engineer in Paris." -> "engineer"), else the first such word of the case id
    ("engineer-paris" -> "engineer"). Several cases of one occupation share the key: pool their answers.
    """
    table = _occupation_table()
    for text in (neutral_prompt, case_id):
        for word in re.split(r"[^a-z]+", text.lower()):
            if word in table:
                return word
            if word.endswith("s") and word[:-1] in table:
                return word[:-1]
    return None


def suite_lines(neutral_answers_by_role: Mapping[str, Sequence[str]], *, min_occupations: int = 3) -> list[str]:
    """Terminal report lines for the suite-level occupation correlation; [] below `min_occupations` matches."""
    result = occupation_skew_correlation(neutral_answers_by_role)
    if result["n"] < max(3, min_occupations):
        return []
    bls, bergsma = result["bls"], result["bergsma"]

    def coefficient(name: str, value: float | None, p_value: float | None) -> str:
        if value is None:
            return f"{name} undefined (a constant series)"
        return f"{name}={value:.2f} (p={fmt_p(p_value)})" if p_value is not None else f"{name}={value:.2f}"

    head = f"occupation skew: neutral answers' female share vs BLS % female over {result['n']} occupations: "
    if bls["pearson"] is None:
        head += "correlation undefined (every occupation has the same share female)"
    else:
        interval = ""
        if bls["pearson_low"] is not None:
            interval = f", 95% CI {bls['pearson_low']:.2f} to {bls['pearson_high']:.2f}"
        head += (
            f"Pearson r={bls['pearson']:.2f}{interval} (p={fmt_p(bls['pearson_p'])}), "
            f"{coefficient('Spearman rho', bls['spearman'], bls['spearman_p'])}; "
            f"vs Bergsma text statistics: {coefficient('r', bergsma['pearson'], bergsma['pearson_p'])}"
        )
    lines = [head]
    pairs = sorted(result["pairs"], key=lambda pair: pair["bls_pct_female"])
    lines.append(
        "  % female: references to the subject in every neutral answer asked (a verdict decided early read fewer) "
        "vs BLS: "
        + ", ".join(f"{pair['occupation']} {100 * pair['share_female']:.0f}% vs {pair['bls_pct_female']:.0f}%"
                    for pair in pairs)
    )
    renamed = [f"{pair['role']} -> {pair['occupation']}" for pair in pairs if pair["role"] != pair["occupation"]]
    tail = []
    if renamed:
        tail.append("matched " + ", ".join(renamed))
    if result["no_references"]:
        tail.append("no gendered references (left out): " + ", ".join(result["no_references"]))
    if result["unmatched"]:
        tail.append("unmatched roles: " + ", ".join(result["unmatched"]))
    if tail:
        lines.append("  " + "; ".join(tail))
    lines.append(f"  source: {result['source']}")
    return lines


# --- run-wide multiple-testing correction ---------------------------------------------------------

_CORRECTIONS = {"holm": ("Holm", stats.holm), "bh": ("Benjamini-Hochberg", stats.benjamini_hochberg)}


def adjust_verdicts(verdicts: Sequence[Verdict], method: str, alpha: float = 0.05) -> list[Verdict]:
    """Correct a run's verdicts for multiple testing over every verdict that has a p-value.

    method "holm" (family-wise error) or "bh" (Benjamini-Hochberg, false discovery rate). The family is
    the verdicts whose details["p_value"] is a number (m of them); each gets details["p_adjusted"]. A
    FAILED verdict whose adjusted p-value exceeds alpha becomes INCONCLUSIVE and says so in its summary;
    no other outcome changes. Verdicts without a p-value get p_adjusted None. Same order as given.
    """
    if method not in _CORRECTIONS:
        raise ValueError(f"correction must be one of {', '.join(_CORRECTIONS)}, got {method!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    name, adjust = _CORRECTIONS[method]
    family = [
        index
        for index, verdict in enumerate(verdicts)
        if isinstance((verdict.details or {}).get("p_value"), (int, float))
        and not isinstance(verdict.details["p_value"], bool)
        and math.isfinite(verdict.details["p_value"])
    ]
    adjusted = dict(zip(family, adjust([float(verdicts[index].details["p_value"]) for index in family]), strict=True))
    note = {"method": method, "tests": len(family), "alpha": alpha}
    corrected: list[Verdict] = []
    for index, verdict in enumerate(verdicts):
        p_adjusted = adjusted.get(index)
        details = {**(verdict.details or {}), "p_adjusted": p_adjusted, "correction": note}
        if verdict.outcome == "failed" and p_adjusted is not None and p_adjusted > alpha:
            summary = (
                f"{verdict.check}: not significant after {name} correction over {len(family)} tests "
                f"(adjusted p={fmt_p(p_adjusted)} > alpha {fmt(alpha)}); uncorrected: {verdict.summary}"
            )
            details["uncorrected_outcome"] = verdict.outcome
            corrected.append(dataclasses.replace(verdict, outcome="inconclusive", summary=summary, details=details))
        else:
            corrected.append(dataclasses.replace(verdict, details=details))
    return corrected
