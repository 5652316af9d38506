"""Every case of the bad-input corpus fails with one clear message, leaves no manifest, and
writes nothing outside OUT."""

import pytest
from click.testing import CliRunner

from tests.corpus.make_corpus import CASES
from vla_data.cli import main


def snapshot(folder):
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_fails_clearly(case, tmp_path):
    args = case.build(tmp_path)
    before = snapshot(tmp_path)
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 1, result.output
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("Error: ")
    assert __import__("re").search(case.error, message), message
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.arrow"))
    assert snapshot(tmp_path) == before  # inputs untouched, nothing new outside OUT


def test_corpus_has_at_least_fifteen_cases():
    assert len(CASES) >= 15 and len({c.name for c in CASES}) == len(CASES)
