"""A claim's verdict: holds, does not hold, or not testable (with the reason), and their tally over seeds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["HOLDS", "FAILS", "NOT_TESTABLE", "VERDICTS", "Claim", "Tally", "ClaimOverSeeds", "summarize"]

HOLDS = "holds"
FAILS = "does not hold"
NOT_TESTABLE = "not testable"
VERDICTS = (HOLDS, FAILS, NOT_TESTABLE)


@dataclass(frozen=True)
class Claim:
    """One finding of the paper checked on one seed's stores.

    Attributes:
        name: the claim's identifier (``claims.json``, the report's headings).
        statement: its rule, in one sentence (thresholds included).
        verdict: :data:`HOLDS`, :data:`FAILS` or :data:`NOT_TESTABLE`.
        finding: one line saying what was measured (for a claim that is not
            testable: why not); what the docs quote.
        evidence: the numbers behind the verdict (JSON-able).
        reason: why the claim is not testable (``None`` otherwise).
    """

    name: str
    statement: str
    verdict: str
    finding: str
    evidence: dict = field(default_factory=dict)
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} of claim {self.name!r} is not one of {VERDICTS}")
        if (self.verdict == NOT_TESTABLE) != (self.reason is not None):
            raise ValueError(f"claim {self.name!r}: a reason is given exactly when it is not testable")

    @property
    def holds(self) -> bool:
        return self.verdict == HOLDS

    @classmethod
    def judged(cls, name: str, statement: str, holds: bool, finding: str, evidence: dict | None = None) -> Claim:
        """A testable claim: :data:`HOLDS` when ``holds`` is true, else :data:`FAILS`."""
        return cls(name, statement, HOLDS if holds else FAILS, finding, evidence or {})

    @classmethod
    def untestable(cls, name: str, statement: str, reason: str, evidence: dict | None = None) -> Claim:
        """A claim the stores cannot test; ``reason`` says why (it is also the finding)."""
        return cls(name, statement, NOT_TESTABLE, reason, evidence or {}, reason)


@dataclass(frozen=True)
class Tally:
    """How many verdicts of each kind (over seeds, or over the claims of one seed)."""

    holds: int = 0
    fails: int = 0
    not_testable: int = 0

    @classmethod
    def of(cls, verdicts: Iterable[str]) -> Tally:
        verdicts = list(verdicts)
        return cls(verdicts.count(HOLDS), verdicts.count(FAILS), verdicts.count(NOT_TESTABLE))

    @property
    def total(self) -> int:
        return self.holds + self.fails + self.not_testable

    def counts(self) -> dict[str, int]:
        """``{"holds": k, "does not hold": j, "not testable": l}`` (the JSON form)."""
        return {HOLDS: self.holds, FAILS: self.fails, NOT_TESTABLE: self.not_testable}

    def in_seeds(self) -> str:
        """``"holds in 1 of 3 seeds (does not hold in 1, not testable in 1)"``: every verdict counted."""
        rest = [f"{verdict} in {count}" for verdict, count in ((FAILS, self.fails), (NOT_TESTABLE, self.not_testable))
                if count]
        return f"holds in {self.holds} of {self.total} seeds" + (f" ({', '.join(rest)})" if rest else "")

    def of_claims(self) -> str:
        """``"5 hold, 3 do not hold, 1 not testable (of 9 claims)"``."""
        return (f"{self.holds} hold, {self.fails} do not hold, {self.not_testable} not testable "
                f"(of {self.total} claim{'s' if self.total != 1 else ''})")


@dataclass(frozen=True)
class ClaimOverSeeds:
    """One claim over an experiment's seeds: each seed's :class:`Claim` (key ``None`` without a seed axis)."""

    name: str
    statement: str
    per_seed: dict[int | None, Claim]

    @property
    def tally(self) -> Tally:
        return Tally.of(c.verdict for c in self.per_seed.values())

    @property
    def line(self) -> str:
        """The verdict in words: the one seed's verdict, or "holds in k of n seeds (…)"."""
        if list(self.per_seed) == [None]:
            return self.per_seed[None].verdict
        return self.tally.in_seeds()


def summarize(checked: Mapping[int | None, list[Claim]]) -> list[ClaimOverSeeds]:
    """Per claim (in report order): its verdict in each seed. ``checked`` maps seed → that seed's claims."""
    names = list(dict.fromkeys(c.name for claims in checked.values() for c in claims))
    summary = []
    for name in names:
        found = {seed: c for seed, claims in checked.items() for c in claims if c.name == name}
        summary.append(ClaimOverSeeds(name, next(iter(found.values())).statement, found))
    return summary
