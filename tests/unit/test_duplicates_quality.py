"""The duplicate check measured on the labelled set (tests/fixtures/duplicates/pairs.jsonl):
for each pair a fresh index holds the first invoice and is asked about the second. Prints
precision and recall per rule and per kind (``pytest -s``); the goal is recall of at least
0.95 with precision of at least 0.9 overall."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from domain.duplicates import Candidate, Decision, DuplicateIndex, Rule, Verdict

PAIRS = Path(__file__).resolve().parents[1] / "fixtures" / "duplicates" / "pairs.jsonl"
# The rule meant to catch each kind of true duplicate, for recall per rule.
EXPECTED_RULE = {
    "exact_resend": Rule.SAME_NUMBER,
    "supplier_variant": Rule.SAME_NUMBER,
    "number_variant": Rule.NUMBER_VARIANT,
    "same_document": Rule.SAME_DOCUMENT,
    "reissued_new_number": Rule.SAME_TOTAL_NEAR_DATE,
    "ocr_misread": Rule.SAME_TOTAL_NEAR_DATE,
}
MIN_RECALL = 0.95
MIN_PRECISION = 0.9


def candidate(key: str, item: dict[str, Any]) -> Candidate:
    return Candidate(
        tenant="t",
        key=key,
        supplier=item["supplier"],
        supplier_tax_number=item["tax_number"],
        number=item["number"],
        date=dt.date.fromisoformat(item["date"]),
        currency=item["currency"],
        total=Decimal(item["total"]),
        credit_note=item["credit_note"],
        document_sha256=item["document_sha256"],
    )


@dataclass(frozen=True)
class Outcome:
    id: str
    kind: str
    duplicate: bool
    verdict: Verdict

    @property
    def flagged(self) -> bool:
        return self.verdict.decision is not Decision.NEW

    @property
    def rules(self) -> set[Rule]:
        return {rule for rule, _ in self.verdict.by_rule}


def outcomes() -> list[Outcome]:
    out = []
    for line in PAIRS.read_text("utf-8").splitlines():
        pair = json.loads(line)
        index = DuplicateIndex("t")
        index.add(candidate("t:a", pair["a"]))
        verdict = index.check(candidate("t:b", pair["b"]))
        assert verdict.decision is Decision.NEW or verdict.matches == ("t:a",)
        out.append(Outcome(pair["id"], pair["kind"], pair["duplicate"], verdict))
    return out


def ratio(a: int, b: int) -> float:
    return a / b if b else 1.0


def table(results: list[Outcome]) -> str:
    lines = [
        f"{'rule':<22}{'flagged':>8}{'true':>6}{'precision':>11}{'expected':>10}"
        f"{'caught':>8}{'recall':>8}"
    ]
    for rule in Rule:
        flagged = [o for o in results if o.verdict.rule is rule]
        expected = [o for o in results if o.duplicate and EXPECTED_RULE.get(o.kind) is rule]
        caught = [o for o in expected if rule in o.rules]
        true = sum(o.duplicate for o in flagged)
        lines.append(
            f"{rule.value:<22}{len(flagged):>8}{true:>6}{ratio(true, len(flagged)):>11.3f}"
            f"{len(expected):>10}{len(caught):>8}{ratio(len(caught), len(expected)):>8.3f}"
        )
    lines.append(f"\n{'kind':<30}{'pairs':>6}{'duplicate':>10}{'flagged':>8}{'right':>7}")
    kinds = Counter(o.kind for o in results)
    for kind in kinds:
        of_kind = [o for o in results if o.kind == kind]
        right = sum(o.flagged == o.duplicate for o in of_kind)
        lines.append(
            f"{kind:<30}{len(of_kind):>6}{str(of_kind[0].duplicate).lower():>10}"
            f"{sum(o.flagged for o in of_kind):>8}{right:>7}"
        )
    wrong = [o for o in results if o.flagged != o.duplicate]
    lines.append("\nwrong: " + ", ".join(f"{o.id} {o.kind} ({o.verdict.rule})" for o in wrong))
    return "\n".join(lines)


def test_labelled_set_is_large_and_has_every_kind() -> None:
    results = outcomes()
    assert len(results) >= 300
    kinds = {o.kind for o in results}
    assert set(EXPECTED_RULE) <= kinds
    for look_alike in (
        "monthly_same_amount",
        "similar_supplier_names",
        "credit_note_of_invoice",
        "outside_window",
        "different_amount",
        "number_lookalike",
    ):
        assert look_alike in kinds
    assert sum(o.duplicate for o in results) >= 100
    assert sum(not o.duplicate for o in results) >= 100


def test_precision_and_recall_meet_the_goal() -> None:
    results = outcomes()
    tp = sum(o.flagged and o.duplicate for o in results)
    fp = sum(o.flagged and not o.duplicate for o in results)
    fn = sum(not o.flagged and o.duplicate for o in results)
    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    print(f"\n{table(results)}")
    print(
        f"\noverall: {len(results)} pairs, {tp} caught, {fp} false alarms, {fn} missed: "
        f"precision {precision:.3f}, recall {recall:.3f}"
    )
    assert recall >= MIN_RECALL, f"recall {recall:.3f} < {MIN_RECALL}"
    assert precision >= MIN_PRECISION, f"precision {precision:.3f} < {MIN_PRECISION}"
    # A credit note is never a duplicate of its invoice: not one is flagged.
    assert not [o for o in results if o.kind == "credit_note_of_invoice" and o.flagged]
