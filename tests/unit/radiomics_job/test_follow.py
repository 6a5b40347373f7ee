"""The follow consumer's pure parts: newest study version wins, the study filter, and the CLI's usage errors."""

from __future__ import annotations

from radlake.radiomics import follow
from radlake.radiomics.cli import main
from radlake.synthetic.lake_events import SeriesPlan, series_events, study_completed


def test_the_newest_version_of_each_study_wins():
    a = series_events(SeriesPlan("st-olav", "s1", "a", slices=3))
    b = series_events(SeriesPlan("st-olav", "s2", "b", slices=3))
    v1, v2, other = study_completed(a), study_completed(a, version=2), study_completed(b)
    latest = follow.latest_per_study([v2, other, v1])
    assert latest == {v1.data.study_uid: v2, other.data.study_uid: other}
    assert [r.series_uid for r in follow.series_refs(v2)] == [a[0].data.series_uid]


def test_study_filter_scopes_the_job_and_keeps_the_users_filter():
    assert follow.study_filter(["2.25.2", "2.25.1"], None) == "study_uid IN ('2.25.1', '2.25.2')"
    assert follow.study_filter(["2.25.1"], "project = 'x'") == "(project = 'x') AND study_uid IN ('2.25.1')"
    assert follow.study_filter(["2.25.1", "1' OR '1'='1"], None) == "study_uid IN ('2.25.1')"


def test_run_with_masks_needs_provider_and_project(tmp_path, capsys):
    settings = tmp_path / "s.yaml"
    settings.write_text("aggregations: ['3D']\n")
    assert main(["run", "--settings", str(settings), "--masks", str(tmp_path / "seg.dcm")]) == 2
    assert "--provider" in capsys.readouterr().err
