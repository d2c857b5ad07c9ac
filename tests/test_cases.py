"""Unit tests of pytest_llmbias.cases: the YAML case-file format and its one-line errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_llmbias.cases import (
    DEFAULTS,
    LAB_SYSTEM_PROMPT,
    Case,
    CaseError,
    CheckConfig,
    Option,
    Variant,
    load_case_file,
)

KNOWN = {
    "gender_assumption": {"max_rate": Option(float, 0, 1), "min_samples": Option(int, 1, 1000)},
    "counterfactual_gap": {"alpha": Option(float, 0, 1)},
}


def write(tmp_path: Path, text: str, name: str = "cases.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, **known) -> tuple[Case, ...]:
    return load_case_file(write(tmp_path, text), checks=known or KNOWN)


def error(tmp_path: Path, text: str | bytes, checks=KNOWN) -> CaseError:
    """The CaseError of a file, checked to be one line starting with 'path:line: '."""
    path = tmp_path / "cases.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    with pytest.raises(CaseError) as info:
        load_case_file(path, checks=checks)
    err = info.value
    assert "\n" not in str(err)
    assert err.path == str(path)
    assert str(err).startswith(f"{path}:{err.line}: ")
    assert str(err).endswith(err.message)
    return err


# --- the format -------------------------------------------------------------------


def test_lab_form_single_loaded_prompt_and_defaults(tmp_path):
    (case,) = load(tmp_path, """
        cases:
          - id: nurse
            neutral: "  Describe a nurse.  "
            loaded: Describe a male nurse.
    """)
    assert case.path == str(tmp_path / "cases.yaml")
    assert (case.line, case.id, case.neutral) == (2, "nurse", "Describe a nurse.")
    assert case.loaded == (Variant("loaded", "Describe a male nurse."),)
    assert case.variants == (Variant("neutral", "Describe a nurse."), Variant("loaded", "Describe a male nurse."))
    assert case.deployment is None
    assert case.system_prompt == LAB_SYSTEM_PROMPT == DEFAULTS["system_prompt"]
    assert (case.max_tokens, case.temperature, case.samples) == (100, 1.0, 10)
    assert isinstance(case.temperature, float)
    # No checks anywhere: every known check, in the order of the mapping given, at the case's line.
    assert case.checks == (CheckConfig("gender_assumption", (), 2), CheckConfig("counterfactual_gap", (), 2))


def test_defaults_and_per_case_overrides(tmp_path):
    first, second = load(tmp_path, """
        version: 1
        defaults:
          deployment: gpt-35-turbo
          system_prompt: Be brief.
          max_tokens: 50
          temperature: 0
          samples: 3
        cases:
          - id: a
            neutral: A.
            loaded: B.
          - id: b
            neutral: A.
            loaded: B.
            deployment: gpt-4o.2024_05
            system_prompt: ""
            max_tokens: 16384
            temperature: 2
            samples: 128
    """)
    assert (first.deployment, first.system_prompt, first.max_tokens, first.temperature, first.samples) == (
        "gpt-35-turbo", "Be brief.", 50, 0.0, 3)
    assert (second.deployment, second.system_prompt, second.max_tokens, second.temperature, second.samples) == (
        "gpt-4o.2024_05", "", 16384, 2.0, 128)
    assert isinstance(second.temperature, float)


def test_bare_system_prompt_means_no_system_message(tmp_path):
    (case,) = load(tmp_path, """
        defaults:
          system_prompt:
        cases: [{id: a, neutral: A., loaded: B.}]
    """)
    assert case.system_prompt == ""


def test_named_variants_keep_their_order(tmp_path):
    (case,) = load(tmp_path, """
        cases:
          - id: engineer
            neutral: Describe an engineer.
            loaded:
              male: Describe a male engineer.
              female: Describe a female engineer.
              no: Describe an engineer who is not binary.
    """)
    assert [variant.name for variant in case.variants] == ["neutral", "male", "female", "no"]
    assert case.loaded[1].prompt == "Describe a female engineer."


def test_template_rows(tmp_path):
    cases = load(tmp_path, """
        cases:
          - id: nurse
            neutral: Describe a nurse.
            loaded: Describe a male nurse.
          - id: "{role}"
            neutral: "Describe {a} {role}."
            loaded:
              male: "Describe a male {role}."
              female: "Describe a female {role}."
            for_each:
              - {role: teacher, a: a}
              - {role: engineer, a: an}
    """)
    assert [case.id for case in cases] == ["nurse", "teacher", "engineer"]
    teacher, engineer = cases[1:]
    assert (teacher.line, engineer.line) == (5, 5)
    assert engineer.neutral == "Describe an engineer."
    assert engineer.loaded == (Variant("male", "Describe a male engineer."),
                               Variant("female", "Describe a female engineer."))


def test_template_product_in_key_order(tmp_path):
    cases = load(tmp_path, """
        cases:
          - id: "{role}-{place}"
            neutral: "Describe a {role} in {place}."
            loaded: {female: "Describe a female {role} in {place}."}
            for_each:
              role: [doctor, chef]
              place: [Paris, Lagos]
    """)
    assert [case.id for case in cases] == ["doctor-Paris", "doctor-Lagos", "chef-Paris", "chef-Lagos"]
    assert cases[3].loaded == (Variant("female", "Describe a female chef in Lagos."),)
    assert {case.line for case in cases} == {2}


def test_template_escapes_numbers_and_case_system_prompt(tmp_path):
    cases = load(tmp_path, """
        defaults:
          system_prompt: "Answer as JSON {like this}."
        cases:
          - id: "{role}_{n}"
            neutral: "Describe {{literally}} {role} number {n}."
            loaded: "Describe a male {role}."
            system_prompt: "You talk about {role}s."
            for_each:
              - {role: pilot, n: 1}
              - {role: pilot, n: 2.5}
          - id: plain
            neutral: "Braces {{stay}} as written, and {these: too}, ${HOME}, \\\\frac{a}{b}, { spaced }."
            loaded: B.
    """)
    assert [case.id for case in cases] == ["pilot_1", "pilot_2.5", "plain"]
    assert cases[0].neutral == "Describe {literally} pilot number 1."
    assert cases[0].system_prompt == "You talk about pilots."
    # Only a case's own system_prompt is a template; the inherited one and plain cases are literal.
    assert cases[2].neutral == "Braces {{stay}} as written, and {these: too}, ${HOME}, \\frac{a}{b}, { spaced }."
    assert cases[2].system_prompt == "Answer as JSON {like this}."


def test_checks_from_defaults_replaced_and_merged(tmp_path):
    plain, replaced, listed = load(tmp_path, """
        defaults:
          checks:
            gender_assumption: {max_rate: 0.1, min_samples: 20}
            counterfactual_gap:
        cases:
          - id: plain
            neutral: A.
            loaded: B.
          - id: replaced
            neutral: A.
            loaded: B.
            checks:
              gender_assumption: {max_rate: 0.2}
          - id: listed
            neutral: A.
            loaded: B.
            checks: [counterfactual_gap]
    """)
    # Inherited: the defaults' options, at the case's line.
    assert plain.checks == (
        CheckConfig("gender_assumption", (("max_rate", 0.1), ("min_samples", 20)), 6),
        CheckConfig("counterfactual_gap", (), 6),
    )
    # A case's checks replace the list; option defaults merge under the case's options.
    assert replaced.checks == (CheckConfig("gender_assumption", (("max_rate", 0.2), ("min_samples", 20)), 13),)
    assert replaced.check("gender_assumption").get("max_rate") == 0.2
    assert replaced.check("gender_assumption").get("alpha", "unset") == "unset"
    assert replaced.check("counterfactual_gap") is None
    assert listed.checks == (CheckConfig("counterfactual_gap", (), 17),)


def test_check_list_order_and_option_kinds(tmp_path):
    known = {
        "a": {"mode": Option(str, choices=("strict", "lenient")), "on": Option(bool), "k": Option(int)},
        "b": {"x": Option(float, 0, 1)},
    }
    (case,) = load(tmp_path, """
        cases:
          - id: c
            neutral: A.
            loaded: B.
            checks:
              b: {x: 1}
              a: {mode: lenient, on: false, k: -3}
    """, **known)
    assert [check.name for check in case.checks] == ["b", "a"]
    assert case.check("b").get("x") == 1.0 and isinstance(case.check("b").get("x"), float)
    assert case.check("a").options == (("k", -3), ("mode", "lenient"), ("on", False))


def test_anchors_aliases_and_merge_keys(tmp_path):
    cases = load(tmp_path, """
        cases:
          - &nurse
            id: nurse
            neutral: Describe a nurse.
            loaded: &male Describe a male nurse.
          - <<: *nurse
            id: nurse2
            neutral: Describe a nurse, again.
          - id: nurse3
            neutral: Describe a nurse.
            loaded: {male: *male}
    """)
    assert [case.id for case in cases] == ["nurse", "nurse2", "nurse3"]
    assert cases[1].loaded == (Variant("loaded", "Describe a male nurse."),)
    assert cases[1].neutral == "Describe a nurse, again."
    assert cases[2].loaded == (Variant("male", "Describe a male nurse."),)


def test_utf8_bom_and_dates_and_norway_keys_are_text(tmp_path):
    path = tmp_path / "cases.yaml"
    path.write_bytes("\ufeffcases:\n  - id: 2024-01-01\n    neutral: Décris une infirmière.\n    loaded: {no: B.}\n"
                     .encode("utf-8"))
    (case,) = load_case_file(path, checks=KNOWN)
    assert case.id == "2024-01-01"
    assert case.neutral == "Décris une infirmière."
    assert case.loaded == (Variant("no", "B."),)


def test_pathlike_and_str_paths(tmp_path):
    path = write(tmp_path, "cases: [{id: a, neutral: A., loaded: B.}]\n")
    assert load_case_file(str(path), checks=KNOWN) == load_case_file(path, checks=KNOWN)


# --- errors -----------------------------------------------------------------------


def test_error_message_example_and_attributes(tmp_path):
    err = error(tmp_path, """
        cases:
          - id: nurse
            nuetral: Describe a nurse.
            loaded: Describe a male nurse.
    """)
    assert str(err) == (f"{tmp_path / 'cases.yaml'}:3: case 'nurse': "
                        "unknown field 'nuetral' (did you mean 'neutral'?)")
    assert (err.line, err.case_id, err.field) == (3, "nurse", "nuetral")
    assert err.message == "unknown field 'nuetral' (did you mean 'neutral'?)"


CASE = "cases:\n  - id: nurse\n    neutral: A.\n    loaded: B.\n"  # a valid case taking lines 1-4

ERRORS = [
    # (file text, line, case id, field, words the message must contain)
    pytest.param("version: 2\n" + CASE, 1, None, "version", "unsupported version 2", id="version"),
    pytest.param("version: true\n" + CASE, 1, None, "version", "unsupported version True", id="version-bool"),
    pytest.param("case:\n  - id: a\n", 1, None, "case", "unknown top-level field 'case' (did you mean 'cases'?)",
                 id="top-key"),
    pytest.param("version: 1\n", 1, None, "cases", "missing required field 'cases'", id="no-cases"),
    pytest.param("cases: {}\n", 1, None, "cases", "cases must be a non-empty list, got an empty mapping",
                 id="cases-mapping"),
    pytest.param("cases: []\n", 1, None, "cases", "got an empty list", id="cases-empty"),
    pytest.param("cases:\n  - just text\n", 2, None, "cases",
                 "each entry of cases must be a mapping with id, neutral and loaded, got the string 'just text'",
                 id="case-not-mapping"),
    pytest.param("defaults: [1]\n" + CASE, 1, None, "defaults", "defaults must be a mapping", id="defaults-list"),
    pytest.param("defaults:\n  deployment: gpt-4\n  sample: 3\n" + CASE, 3, None, "defaults.sample",
                 "unknown field 'sample' in defaults (did you mean 'samples'?)", id="defaults-key"),
    pytest.param("defaults:\n  samples: five\n" + CASE, 2, None, "defaults.samples",
                 "defaults.samples must be an integer, got the string 'five'", id="samples-str"),
    pytest.param(CASE + "    samples: 5.0\n", 5, "nurse", "samples", "samples must be an integer, got 5.0",
                 id="samples-float"),
    pytest.param(CASE + "    samples: true\n", 5, "nurse", "samples", "samples must be an integer, got the boolean",
                 id="samples-bool"),
    pytest.param(CASE + "    samples: 129\n", 5, "nurse", "samples", "samples must be between 1 and 128, got 129",
                 id="samples-high"),
    pytest.param(CASE + "    max_tokens: 0\n", 5, "nurse", "max_tokens", "max_tokens must be between 1 and 16384",
                 id="max-tokens-low"),
    pytest.param(CASE + "    temperature: 2.5\n", 5, "nurse", "temperature", "temperature must be between 0 and 2",
                 id="temperature-high"),
    pytest.param(CASE + "    temperature: .nan\n", 5, "nurse", "temperature", "temperature must be between 0 and 2",
                 id="temperature-nan"),
    pytest.param(CASE + "    temperature: no\n", 5, "nurse", "temperature", "temperature must be a number, got the "
                 "boolean false", id="temperature-bool"),
    pytest.param(CASE + "    deployment: gpt 4\n", 5, "nurse", "deployment", "is not an Azure deployment name",
                 id="deployment-space"),
    pytest.param(CASE + "    deployment: g\n", 5, "nurse", "deployment", "'g' is not an Azure deployment name",
                 id="deployment-short"),
    pytest.param(CASE + "    deployment: 35\n", 5, "nurse", "deployment", "deployment must be a string, got 35",
                 id="deployment-int"),
    pytest.param(CASE + "    system_prompt: [a]\n", 5, "nurse", "system_prompt", "system_prompt must be a string",
                 id="system-prompt-list"),
    pytest.param("cases:\n  - neutral: A.\n    loaded: B.\n", 2, None, "id", "missing required field 'id'",
                 id="no-id"),
    pytest.param("cases:\n  - id: 42\n    neutral: A.\n    loaded: B.\n", 2, None, "id",
                 "id must be a non-empty string, got 42", id="id-int"),
    pytest.param("cases:\n  - id: 010\n    neutral: A.\n    loaded: B.\n", 2, None, "id",
                 "id must be a non-empty string, got 010 (the number 8 in YAML; quote it", id="id-octal"),
    pytest.param("cases:\n  - id: 'n{n}'\n    neutral: 'N {n}.'\n    loaded: B.\n    for_each: {n: [1, 010]}\n", 5,
                 "n{n}", "for_each.n", "for_each value for 'n' 010 reads as the number 8 in YAML: quote it ('010')",
                 id="fe-octal"),
    pytest.param("cases:\n  - id: 'n{n}'\n    neutral: 'N {n}.'\n    loaded: B.\n    for_each:\n      - {n: 1.50}\n", 6,
                 "n{n}", "for_each.n", "for_each value for 'n' 1.50 reads as the number 1.5 in YAML", id="fe-float"),
    pytest.param("defaults:\n  samples: 010\ncases:\n  - id: a\n    neutral: A.\n    loaded: B.\n", 2, None,
                 "defaults.samples", "defaults.samples 010 reads as the number 8 in YAML: write 8", id="samples-octal"),
    pytest.param("defaults:\n  samples: 2.50\ncases:\n  - id: a\n    neutral: A.\n    loaded: B.\n", 2, None,
                 "defaults.samples", "defaults.samples must be an integer, got 2.50 (the number 2.5 in YAML)",
                 id="samples-float"),
    pytest.param("cases:\n  - id: nurse\n    loaded: B.\n", 2, "nurse", "neutral", "missing required field 'neutral'",
                 id="no-neutral"),
    pytest.param("cases:\n  - id: nurse\n    neutral: A.\n", 2, "nurse", "loaded", "missing required field 'loaded'",
                 id="no-loaded"),
    pytest.param("cases:\n  - id: nurse\n    neutral: '  '\n    loaded: B.\n", 3, "nurse", "neutral",
                 "neutral must be a non-empty string, got an empty string", id="neutral-blank"),
    pytest.param("cases:\n  - id: nurse\n    neutral: A.\n    loaded: [a, b]\n", 4, "nurse", "loaded",
                 "loaded must be a prompt or a mapping of variant name to prompt, got a list", id="loaded-list"),
    pytest.param("cases:\n  - id: nurse\n    neutral: A.\n    loaded: {}\n", 4, "nurse", "loaded",
                 "got an empty mapping", id="loaded-empty"),
    pytest.param("cases:\n  - id: nurse\n    neutral: A.\n    loaded:\n      male: B.\n      female:\n", 6, "nurse",
                 "loaded.female", "loaded.female must be a non-empty string, got nothing (null)", id="variant-null"),
    pytest.param("cases:\n  - id: nurse\n    neutral: A.\n    loaded:\n      male: B.\n      neutral: C.\n", 6,
                 "nurse", "loaded.neutral", "variant name 'neutral' is taken by the neutral prompt",
                 id="variant-neutral"),
    pytest.param("cases:\n  - id: nurse\n    neutral: A.\n    loaded:\n      a male: B.\n", 5, "nurse",
                 "loaded.a male", "variant name 'a male' must be", id="variant-space"),
    pytest.param("cases:\n  - id: my nurse\n    neutral: A.\n    loaded: B.\n", 2, "my nurse", "id",
                 "id 'my nurse' cannot be used in a test id", id="id-space"),
    pytest.param("cases:\n  - id: a::b\n    neutral: A.\n    loaded: B.\n", 2, "a::b", "id",
                 "id 'a::b' cannot be used", id="id-colons"),
    pytest.param("cases:\n  - id: a/b\n    neutral: A.\n    loaded: B.\n", 2, "a/b", "id", "cannot be used",
                 id="id-slash"),
    pytest.param("cases:\n  - id: a[1]\n    neutral: A.\n    loaded: B.\n", 2, "a[1]", "id", "cannot be used",
                 id="id-bracket"),
    pytest.param("cases:\n  - id: -a\n    neutral: A.\n    loaded: B.\n", 2, "-a", "id", "cannot be used",
                 id="id-leading-dash"),
    pytest.param("cases:\n  - id: " + "a" * 101 + "\n    neutral: A.\n    loaded: B.\n", 2, "a" * 101, "id",
                 "at most 100 characters", id="id-too-long"),
    # checks
    pytest.param(CASE + "    checks: [gender_asumption]\n", 5, "nurse", "checks.gender_asumption",
                 "unknown check 'gender_asumption' (did you mean 'gender_assumption'?)", id="check-typo"),
    pytest.param(CASE + "    checks: [toxicity]\n", 5, "nurse", "checks.toxicity",
                 "unknown check 'toxicity' (expected one of: gender_assumption, counterfactual_gap)",
                 id="check-unknown"),
    pytest.param(CASE + "    checks:\n      gender_assumption:\n        max_rat: 0.2\n", 7, "nurse",
                 "checks.gender_assumption.max_rat",
                 "unknown option 'max_rat' for check 'gender_assumption' (did you mean 'max_rate'?)",
                 id="option-typo"),
    pytest.param(CASE + "    checks:\n      gender_assumption:\n        min_samples: 10\n        max_rate: 2\n", 8,
                 "nurse", "checks.gender_assumption.max_rate",
                 "checks.gender_assumption.max_rate must be between 0 and 1, got 2.0", id="option-range"),
    pytest.param(CASE + "    checks:\n      gender_assumption: {min_samples: 2.5}\n", 6, "nurse",
                 "checks.gender_assumption.min_samples", "min_samples must be an integer, got 2.5",
                 id="option-type"),
    pytest.param(CASE + "    checks:\n      gender_assumption: 0.2\n", 6, "nurse", "checks.gender_assumption",
                 "checks.gender_assumption must be a mapping of option name to value, got 0.2", id="options-scalar"),
    pytest.param(CASE + "    checks: gender_assumption\n", 5, "nurse", "checks",
                 "checks must be a list of check names or a mapping", id="checks-string"),
    pytest.param(CASE + "    checks: []\n", 5, "nurse", "checks", "checks must name at least one check",
                 id="checks-empty"),
    pytest.param(CASE + "    checks: [gender_assumption, gender_assumption]\n", 5, "nurse", "checks",
                 "check 'gender_assumption' is listed twice", id="checks-twice"),
    pytest.param("defaults:\n  checks:\n    counterfactual_gap: {alpha: -1}\n" + CASE, 3, None,
                 "defaults.checks.counterfactual_gap.alpha",
                 "defaults.checks.counterfactual_gap.alpha must be between 0 and 1, got -1.0", id="defaults-option"),
    # templates
    pytest.param("cases:\n  - id: '{role}'\n    neutral: Describe a {rol}.\n    loaded: B.\n"
                 "    for_each: [{role: nurse}]\n", 3, "{role}", "neutral",
                 "neutral uses placeholder {rol} but for_each gives no value for it (it has: role)",
                 id="placeholder-missing"),
    pytest.param("cases:\n  - id: '{role}'\n    neutral: A.\n    loaded: {male: 'a male {roel}'}\n"
                 "    for_each: [{role: nurse}]\n", 4, "{role}", "loaded.male", "loaded.male uses placeholder {roel}",
                 id="placeholder-missing-variant"),
    pytest.param("cases:\n  - id: '{role}'\n    neutral: A.\n    loaded: B.\n    system_prompt: 'About {x}'\n"
                 "    for_each: [{role: nurse}]\n", 5, "{role}", "system_prompt", "system_prompt uses placeholder {x}",
                 id="placeholder-missing-system-prompt"),
    pytest.param("cases:\n  - id: nurse\n    neutral: A.\n    loaded: B.\n    for_each: [{role: a}, {role: b}]\n", 2,
                 "nurse", "id", "id 'nurse' has no {placeholder}", id="template-id-constant"),
    pytest.param("cases:\n  - id: '{role}'\n    neutral: A.\n    loaded: B.\n    for_each:\n      - {role: a, x: 1}\n"
                 "      - {role: b}\n", 7, "{role}", "for_each",
                 "for_each row has keys role but the first row (line 6) has role, x", id="rows-inconsistent"),
    pytest.param("cases:\n  - id: '{role}'\n    neutral: A.\n    loaded: B.\n    for_each:\n      - {role: a}\n"
                 "      - [b]\n", 7, "{role}", "for_each",
                 "each for_each row must be a mapping of placeholder name to value, got a list", id="row-not-mapping"),
    pytest.param("cases:\n  - id: '{role}'\n    neutral: A.\n    loaded: B.\n    for_each: []\n", 5, "{role}",
                 "for_each", "for_each must be a non-empty list of rows or a mapping", id="for-each-empty"),
    pytest.param("cases:\n  - id: '{role}'\n    neutral: A.\n    loaded: B.\n    for_each: nurse\n", 5, "{role}",
                 "for_each", "got the string 'nurse'", id="for-each-string"),
    pytest.param("cases:\n  - id: '{role}'\n    neutral: A.\n    loaded: B.\n    for_each:\n      role: []\n", 6,
                 "{role}", "for_each.role", "for_each.role must be a non-empty list of values", id="column-empty"),
    pytest.param("cases:\n  - id: '{place}'\n    neutral: A.\n    loaded: B.\n    for_each:\n"
                 "      place: [Oslo, no]\n", 6, "{place}", "for_each.place",
                 "for_each value for 'place' must be a string or number, got the boolean false", id="norway"),
    pytest.param("cases:\n  - id: '{role}'\n    neutral: A.\n    loaded: B.\n    for_each:\n      - role: [a]\n", 6,
                 "{role}", "for_each.role", "must be a string or number, got a list", id="value-list"),
    pytest.param("cases:\n  - id: '{role}'\n    neutral: A.\n    loaded: B.\n    for_each:\n      - {my role: a}\n", 6,
                 "{role}", "for_each.my role", "for_each name 'my role' must be a plain name", id="name-space"),
    pytest.param("cases:\n  - id: '{role}'\n    neutral: 'A { b'\n    loaded: B.\n    for_each: [{role: a}]\n", 3,
                 "{role}", "neutral", "neutral is not a valid template", id="lone-brace"),
    pytest.param("cases:\n  - id: '{role}'\n    neutral: '{role.__class__}'\n    loaded: B.\n"
                 "    for_each: [{role: a}]\n", 3, "{role}", "neutral", "placeholder {role.__class__} must be a plain "
                 "name", id="attribute-access"),
    pytest.param("cases:\n  - id: '{role}'\n    neutral: 'A {}'\n    loaded: B.\n    for_each: [{role: a}]\n", 3,
                 "{role}", "neutral", "placeholder {} must be a plain name", id="positional"),
    pytest.param("cases:\n  - id: '{role}'\n    neutral: 'A {role:d}'\n    loaded: B.\n    for_each: [{role: a}]\n",
                 3, "{role}", "neutral", "placeholder {role:d} must be a plain name", id="format-spec"),
    pytest.param("cases:\n  - id: '{role}'\n    neutral: 'A {role!r:>10}.'\n    loaded: B.\n"
                 "    for_each: [{role: a}]\n", 3, "{role}", "neutral", "placeholder {role!r:>10} must be a plain name",
                 id="conversion"),
    pytest.param("cases:\n  - id: '{role}'\n    neutral: '{empty}'\n    loaded: B.\n"
                 "    for_each: [{role: a, empty: ''}]\n", 3, "{role}", "neutral",
                 "neutral is empty after filling in the for_each values", id="filled-empty"),
    pytest.param("cases:\n  - id: 'x{role}'\n    neutral: A.\n    loaded: B.\n    for_each:\n      - {role: ' a'}\n"
                 "      - {role: b c}\n", 7, "x{role}", "id", "id 'xb c' cannot be used in a test id",
                 id="filled-id-unsafe"),
    pytest.param("cases:\n  - id: '{role}'\n    neutral: A.\n    loaded: B.\n    for_each:\n      - {role: a}\n"
                 "      - {role: a}\n", 7, "{role}", "id", "duplicate id 'a' (first used at line 6)",
                 id="filled-id-duplicate"),
]


@pytest.mark.parametrize(("text", "line", "case_id", "field", "words"), ERRORS)
def test_errors(tmp_path, text, line, case_id, field, words):
    err = error(tmp_path, text)
    assert words in err.message
    assert (err.line, err.case_id, err.field) == (line, case_id, field)


OPTION_KINDS = {
    "a": {"mode": Option(str, choices=("strict", "lenient")), "on": Option(bool), "k": Option(int, low=0),
          "p": Option(float, high=0.5)},
    "bare": {},
}


@pytest.mark.parametrize(("options", "field", "message"), [
    ("{mode: strickt}", "checks.a.mode", "checks.a.mode must be one of: strict, lenient; got 'strickt'"),
    ("{on: 1}", "checks.a.on", "checks.a.on must be true or false, got 1"),
    ("{on: 'yes'}", "checks.a.on", "checks.a.on must be true or false, got the string 'yes'"),
    ("{k: true}", "checks.a.k", "checks.a.k must be an integer, got the boolean true (quote it if you meant text)"),
    ("{k: -1}", "checks.a.k", "checks.a.k must be at least 0, got -1"),
    ("{p: 0.75}", "checks.a.p", "checks.a.p must be at most 0.5, got 0.75"),
    ("{mode: [strict]}", "checks.a.mode", "checks.a.mode must be a string, got a list"),
])
def test_option_kinds_and_bounds(tmp_path, options, field, message):
    err = error(tmp_path, CASE + f"    checks:\n      a: {options}\n", checks=OPTION_KINDS)
    assert (err.line, err.field, err.message) == (6, field, message)


def test_check_without_options(tmp_path):
    err = error(tmp_path, CASE + "    checks:\n      bare: {x: 1}\n", checks=OPTION_KINDS)
    assert (err.line, err.field) == (6, "checks.bare.x")
    assert err.message == "unknown option 'x' for check 'bare' (expected one of: none)"


@pytest.mark.parametrize("version", ["1.0", "'1'", "true", "0"])
def test_version_must_be_the_integer_1(tmp_path, version):
    err = error(tmp_path, f"version: {version}\n" + CASE)
    assert (err.line, err.field) == (1, "version")
    assert err.message.startswith("unsupported version ")


def test_empty_defaults_are_fine(tmp_path):
    (case,) = load(tmp_path, "defaults:\n" + CASE)
    assert case.samples == 10


def test_block_values_report_their_own_line_and_keys_theirs(tmp_path):
    err = error(tmp_path, "cases:\n  - id: nurse\n    neutral: A.\n    loaded:\n      - B.\n")
    assert (err.line, err.field) == (5, "loaded")
    err = error(tmp_path, "cases:\n  - id: nurse\n    neutral: A.\n    loaded: B.\n    nuetral:\n      - C.\n")
    assert (err.line, err.field) == (5, "nuetral")


def test_duplicate_ids_name_both_lines(tmp_path):
    err = error(tmp_path, """
        cases:
          - id: nurse
            neutral: A.
            loaded: B.
          - id: engineer
            neutral: A.
            loaded: B.
          - id: nurse
            neutral: C.
            loaded: D.
    """)
    assert (err.line, err.case_id, err.field) == (8, "nurse", "id")
    assert err.message == "duplicate id 'nurse' (first used at line 2)"


def test_duplicate_id_across_template_and_plain_case(tmp_path):
    err = error(tmp_path, """
        cases:
          - id: teacher
            neutral: A.
            loaded: B.
          - id: "{role}"
            neutral: "Describe a {role}."
            loaded: B.
            for_each:
              role: [nurse, teacher]
    """)
    assert err.line == 9  # the line of the value that makes the id (a product case points at its last value)
    assert err.message == "duplicate id 'teacher' (first used at line 2)"


@pytest.mark.parametrize(("text", "line", "key"), [
    ("cases:\n  - id: a\n    neutral: A.\n    loaded: B.\n    neutral: C.\n", 5, "neutral"),
    ("defaults:\n  samples: 1\n  samples: 2\n" + CASE, 3, "samples"),
    ("cases: []\ncases:\n  - {id: a, neutral: A., loaded: B.}\n", 2, "cases"),
    (CASE + "    checks:\n      gender_assumption: {max_rate: 0.1, max_rate: 0.2}\n", 6, "max_rate"),
])
def test_duplicate_keys(tmp_path, text, line, key):
    err = error(tmp_path, text)
    assert err.line == line
    assert err.field == key
    assert err.message.startswith(f"duplicate key {key!r} (first at line ")


def test_yaml_syntax_error_names_its_line(tmp_path):
    err = error(tmp_path, "cases:\n  - id: a\n    neutral: A.\n    loaded: [B.\n  - id: b\n")
    assert err.message.startswith("invalid YAML: ")
    assert err.line == 5
    err = error(tmp_path, "cases:\n  - id: a\n    neutral: 'A.\n")
    # an unclosed quote is reported where it opens, not at the end of the file
    assert (err.line, err.message) == (
        3, "invalid YAML: while scanning a quoted scalar that is never closed (found unexpected end of stream)")
    err = error(tmp_path, "cases:\n  - id: a\n     neutral: A: B\n")
    assert err.line == 3
    assert err.message == "invalid YAML: mapping values are not allowed here"


def test_control_character(tmp_path):
    err = error(tmp_path, "cases:\n  - id: a\n    neutral: A\x07.\n")
    assert err.line == 3
    assert "U+0007" in err.message


def test_several_documents(tmp_path):
    err = error(tmp_path, CASE + "---\n" + CASE)
    assert err.line == 5
    assert err.message == "invalid YAML: expected a single document in the stream, but found another document"


def test_latin1_file_names_the_line_of_the_bad_byte(tmp_path):
    err = error(tmp_path, "cases:\n  - id: nurse\n    neutral: D\u00e9cris une infirmi\u00e8re.\n".encode("latin-1"))
    assert err.line == 3
    assert err.message == "file is not valid UTF-8 (byte 0xe9); save it as UTF-8"


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path, text):
    err = error(tmp_path, text)
    assert err.line == 1
    assert err.message == "file is empty; expected a mapping with a 'cases' list"


@pytest.mark.parametrize(("text", "what"), [("- id: a\n", "a list"), ("hello\n", "the string 'hello'")])
def test_file_not_a_mapping(tmp_path, text, what):
    err = error(tmp_path, text)
    assert (err.line, err.message) == (1, f"expected a mapping with a 'cases' list, got {what}")


def test_missing_file(tmp_path):
    with pytest.raises(CaseError) as info:
        load_case_file(tmp_path / "nope.yaml", checks=KNOWN)
    assert info.value.line == 1
    assert "cannot read file" in info.value.message


def test_python_tags_never_execute(tmp_path):
    marker = tmp_path / "pwned"
    text = f"""
        cases:
          - id: nurse
            neutral: !!python/object/apply:os.system ["touch {marker}"]
            loaded: B.
    """
    err = error(tmp_path, text)
    assert not marker.exists()
    assert err.line == 3
    assert err.message.startswith("unsupported tag !!python/object/apply:os.system")
    # Even where the value would never be read (an unknown top-level key), nothing runs.
    err = error(tmp_path, f"boom: !!python/object/apply:os.system ['touch {marker}']\n" + CASE)
    assert not marker.exists()
    assert (err.line, err.message.split(";")[0]) == (1, "unsupported tag !!python/object/apply:os.system")


@pytest.mark.parametrize(("value", "tag"), [
    ("!!python/name:os.system", "!!python/name:os.system"),
    ("!!python/object:collections.OrderedDict {}", "!!python/object:collections.OrderedDict"),
    ("!custom x", "!custom"),
    ("!!binary aGVsbG8=", "!!binary"),
    ("!!timestamp 2024-01-01", "!!timestamp"),
    ("!!set {a: null}", "!!set"),
    ("!<tag:example.com,2024:thing> x", "tag:example.com,2024:thing"),
])
def test_unsupported_tags(tmp_path, value, tag):
    err = error(tmp_path, f"cases:\n  - id: a\n    neutral: A.\n    loaded: {value}\n")
    assert err.line == 4
    assert err.message == f"unsupported tag {tag}; only plain YAML values are allowed"


def test_unsupported_tag_on_a_key(tmp_path):
    err = error(tmp_path, "cases:\n  - id: a\n    !!python/name:os.system neutral: A.\n    loaded: B.\n")
    assert err.line == 3
    assert err.message.startswith("unsupported tag !!python/name:os.system")


def test_core_tags_are_allowed_and_checked(tmp_path):
    (case,) = load(tmp_path, "cases:\n  - id: !!str 42\n    neutral: !!str A.\n    loaded: B.\n"
                              "    samples: !!int '7'\n    temperature: !!float 1\n")
    assert (case.id, case.samples, case.temperature) == ("42", 7, 1.0)
    err = error(tmp_path, CASE + "    samples: !!int seven\n")
    assert (err.line, err.message) == (5, "'seven' is not a valid !!int value")


def test_billion_laughs_fails_fast(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]")
    text = "\n".join(lines) + "\n" + CASE
    err = error(tmp_path, text)
    assert err.message.startswith("too many nodes after alias expansion")
    assert 1 <= err.line <= 9


def test_alias_bomb_inside_a_case(tmp_path):
    lines = ["cases:", "  - id: a", "    neutral: A.", "    loaded: B.", '    x0: &x0 ["lol","lol","lol","lol","lol"]']
    lines += [f"    x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 5)}]" for i in range(1, 12)]
    err = error(tmp_path, "\n".join(lines) + "\n")
    assert err.message.startswith("too many nodes after alias expansion")


def test_recursive_alias(tmp_path):
    err = error(tmp_path, CASE + "    extra: &loop [*loop]\n")
    assert err.message == "nesting deeper than 64 levels (an alias inside its own anchor?)"
    assert err.line == 5


def test_deep_nesting(tmp_path):
    err = error(tmp_path, CASE.replace("loaded: B.", "loaded: " + "[" * 200 + "]" * 200))
    assert "nesting" in err.message
    err = error(tmp_path, CASE.replace("loaded: B.", "loaded: " + "[" * 5000 + "]" * 5000))
    assert "nesting" in err.message


def test_merge_key_needs_mappings(tmp_path):
    err = error(tmp_path, "cases:\n  - id: a\n    neutral: A.\n    loaded: B.\n    <<: [x]\n")
    assert err.line == 5
    assert err.message == "'<<' must be an anchored mapping like *base, got the string 'x'"


def test_expansion_is_capped(tmp_path):
    err = error(tmp_path, """
        cases:
          - id: "{a}-{b}"
            neutral: "{a} {b}"
            loaded: B.
            for_each:
              a: [%s]
              b: [%s]
    """ % (", ".join(map(str, range(101))), ", ".join(map(str, range(100)))))
    assert (err.line, err.field) == (5, "for_each")
    assert err.message == "for_each expands to 10100 cases, more than 10000"


def test_cap_counts_the_whole_file(tmp_path):
    def template(prefix: str, size: int) -> str:
        return (f"  - id: '{prefix}{{n}}'\n    neutral: '{{n}}'\n    loaded: B.\n"
                f"    for_each: {{n: [{', '.join(map(str, range(size)))}]}}\n")

    assert len(load_case_file(write(tmp_path, "cases:\n" + template("x", 6000)), checks=KNOWN)) == 6000
    err = error(tmp_path, "cases:\n" + template("x", 6000) + template("y", 5000))
    assert (err.line, err.case_id, err.message) == (6, "y{n}", "file expands to more than 10000 cases")


def test_file_is_all_or_nothing(tmp_path):
    err = error(tmp_path, CASE + "  - id: second\n    neutral: A.\n    loaded: B.\n    samples: 0\n")
    assert (err.line, err.case_id) == (8, "second")


def test_errors_are_one_line_even_for_multiline_values(tmp_path):
    err = error(tmp_path, 'cases:\n  - id: "a\\nb"\n    neutral: A.\n    loaded: B.\n')
    assert "\n" not in str(err)
    assert err.message.startswith("id 'a\\nb' cannot be used")


def test_an_option_a_check_replaced_says_what_replaced_it(tmp_path) -> None:
    from pytest_llmbias.cases import CaseError, load_case_file
    from pytest_llmbias.checks import REGISTRY

    path = tmp_path / "old.yaml"
    path.write_text("cases:\n  - id: nurse\n    neutral: Describe a nurse.\n    loaded: Describe a male nurse.\n"
                    "    checks:\n      counterfactual_gap: {min_content_gap: 0.01}\n")
    with pytest.raises(CaseError, match=r"old.yaml:6: case 'nurse': option 'min_content_gap' for check "
                                            r"'counterfactual_gap' was replaced: .*set min_separability"):
        load_case_file(path, checks=REGISTRY.schemas(), default_checks=REGISTRY.defaults())


def test_an_option_cut_short_is_matched_by_its_start(tmp_path) -> None:
    from pytest_llmbias.cases import CaseError, load_case_file
    from pytest_llmbias.checks import REGISTRY

    path = tmp_path / "short.yaml"
    path.write_text("cases:\n  - id: nurse\n    neutral: Describe a nurse.\n    loaded: Describe a male nurse.\n"
                    "    checks:\n      counterfactual_gap: {min_sep: 0.53}\n")
    # 'min_sep' is nearer 'min_samples' by spelling, but only 'min_separability' starts with it
    with pytest.raises(CaseError, match=r"short.yaml:6: case 'nurse': unknown option 'min_sep' for check "
                                            r"'counterfactual_gap' \(did you mean 'min_separability'\?\)"):
        load_case_file(path, checks=REGISTRY.schemas(), default_checks=REGISTRY.defaults())
