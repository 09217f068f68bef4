"""Numbers in the docs come from the checker: the marked blocks rendered from a claims.json made
from synthetic stores (one seed and three), rewritten in place, idempotently, and only theirs."""

import json
import re

import pytest

from claim_stores import MINI_ADVANTAGE, MINI_KINDS, MINI_LLC, MINI_SEM, seeded, stores
from conftest import REPO
from transient_ridge.claims import claims_report
from transient_ridge.claims.docs import BLOCK, BLOCKS, DEFAULT_DOCS, main, render_block, rewrite_blocks

PROVENANCE = {"git_commit": "0123456789abcdef", "rule": "claims"}


@pytest.fixture
def mini_json(tmp_path):
    """claims.json of a mini-like experiment (no seed axis): the LLC rises with M but crosses nothing."""
    report = claims_report("mini", *stores(MINI_KINDS, MINI_LLC, sem=MINI_SEM, advantage=MINI_ADVANTAGE))
    path = tmp_path / "mini" / "claims.json"
    path.parent.mkdir()
    path.write_text(report.json(provenance=PROVENANCE))
    return path


@pytest.fixture
def transient_json(tmp_path):
    """claims.json of a three-seed experiment: seed 1 crosses, seed 2's M = inf misses ridge, seed 3 is mini-like."""
    report = claims_report("transient", *seeded({1: {"llc": {16.0: 20.0}}, 2: {"inf_excess": 0.07}, 3: {}}))
    path = tmp_path / "transient" / "claims.json"
    path.parent.mkdir()
    path.write_text(report.json(provenance=PROVENANCE))
    return path


DOC = """# A document

<!-- claims:mini:summary -->
stale mini summary
<!-- /claims:mini:summary -->

Text between blocks, quoting a marker: `<!-- claims:mini:verdict -->` is not a block.

<!-- claims:transient:verdict -->
stale transient verdict
<!-- /claims:transient:verdict -->

<!-- claims:transient:seeds_table -->
<!-- /claims:transient:seeds_table -->

<!-- claims:paper:summary -->
left alone: no claims.json of paper is given
<!-- /claims:paper:summary -->
"""


def test_blocks_are_rendered_from_claims_json_and_a_second_run_changes_nothing(tmp_path, mini_json, transient_json):
    doc = tmp_path / "doc.md"
    doc.write_text(DOC)
    assert main([str(mini_json), str(transient_json), "--docs", str(doc)]) == 0
    text = doc.read_text()
    mini = json.loads(mini_json.read_text())
    summary = text[text.index("<!-- claims:mini:summary -->"):text.index("<!-- /claims:mini:summary -->")]
    assert "stale" not in summary and mini["summary"].rstrip(".") in summary
    assert "`results/mini/claims.json`, commit 0123456" in summary
    for claim in mini["claims"]:  # every claim with its verdict and finding
        verdict = claim["verdict"] if claim["holds"] else f"**{claim['verdict']}**"
        assert f"- `{claim['name']}` {verdict}: {claim['finding']}\n" in summary
    assert "- `transient_ridge` **does not hold**" in summary and "no crossing in the range" in summary
    verdict = text[text.index("<!-- claims:transient:verdict -->"):text.index("<!-- /claims:transient:verdict -->")]
    assert "Of 27 verdicts (9 claims x 3 seeds): " in verdict and "`results/transient/claims.json`, commit 0123456; " in verdict
    assert "Transient M: none, in 0 of 3 seeds. Per intermediate M: M = 4 approach 2.50" in verdict
    assert "left alone: no claims.json of paper is given" in text
    assert "`<!-- claims:mini:verdict -->` is not a block" in text
    assert main([str(mini_json), str(transient_json), "--docs", str(doc)]) == 0
    assert doc.read_text() == text
    assert main([str(mini_json), str(transient_json), "--docs", str(doc), "--check"]) == 0


def test_check_reports_a_stale_block_and_changes_nothing(tmp_path, mini_json, capsys):
    doc = tmp_path / "doc.md"
    doc.write_text(DOC)
    assert main([str(mini_json), "--docs", str(doc), "--check"]) == 1
    assert doc.read_text() == DOC
    assert "claims:mini:summary out of date" in capsys.readouterr().out


def test_the_seeds_table_has_a_row_per_intermediate_M_and_seed_with_the_rules_passed_in_bold(transient_json):
    report = json.loads(transient_json.read_text())
    table = render_block("seeds_table", report).splitlines()
    assert table[0].startswith("| M | seed | approach | OOD depth |")
    rows = [line.split(" | ") for line in table[2:]]
    assert [(r[0].strip("| "), r[1]) for r in rows] == [(M, s) for M in ("4", "16", "64") for s in ("1", "2", "3")]
    transient = next(c for c in report["claims"] if c["name"] == "transient_ridge")
    m = transient["per_seed"]["2"]["evidence"]["runs"]["16"]
    row = next(r for r in rows if r[0] == "| 16" and r[1] == "2")
    assert row[2] == f"{m['approach']:.2f}" and row[-1] == "no |"  # approach 1.00 > 0.5: not in bold


def test_every_kind_renders_one_seed_and_seeds(mini_json, transient_json):
    for path in (mini_json, transient_json):
        report = json.loads(path.read_text())
        for kind in BLOCKS:
            body = render_block(kind, report)
            assert body.endswith("\n") and not re.search(r"\bnan\b", body, re.I), (kind, body)
    account = render_block("account", json.loads(transient_json.read_text()))
    assert "`llc_crosses_M_inf` **holds in 1 of 3 seeds (does not hold in 1, not testable in 1)**" in account
    assert "seed 2: not testable (M = inf does not end at ridge" in account


def test_an_unclosed_block_or_an_unknown_kind_is_refused(mini_json):
    report = json.loads(mini_json.read_text())
    with pytest.raises(ValueError, match=r"claims:mini:summary.*opened but not closed"):
        rewrite_blocks("<!-- claims:mini:summary -->\ntext\n", {"mini": report}, "doc.md")
    with pytest.raises(ValueError, match=r"kind 'tally' is not one of \['account', 'seeds_table'"):
        rewrite_blocks("<!-- claims:mini:tally -->\n<!-- /claims:mini:tally -->\n", {"mini": report}, "doc.md")


def test_a_missing_claims_json_names_the_command_that_builds_it(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path / "results" / "mini" / "claims.json"), "--docs", str(tmp_path / "doc.md")])
    assert "snakemake -c 2" in capsys.readouterr().err


def test_every_block_in_the_docs_is_closed_and_of_a_known_kind():
    found = []
    for name in DEFAULT_DOCS:
        text = (REPO / name).read_text()
        rewrite_blocks(text, {}, name)  # raises on a block opened but not closed
        for match in BLOCK.finditer(text):
            assert match["kind"] in BLOCKS, (name, match[0][:80])
            found.append(f"{name}:{match['exp']}:{match['kind']}")
    assert "README.md:mini:summary" in found and "docs/transient.md:transient:seeds_table" in found
