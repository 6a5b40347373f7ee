from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from streams.completion import (
    Completion,
    StudyProgress,
    accept_instance,
    apply_manifest,
    completion,
    from_json,
    manifest_satisfied,
    mark_emitted,
    to_json,
)
from streams.records import InstanceRecord

from .conftest import T0, manifest_for

QUIET = timedelta(seconds=30)


def _accept(progress, events, start=T0):
    for i, event in enumerate(events):
        progress = accept_instance(progress, InstanceRecord.from_event(event), study_uid=event.data.study_uid,
                                   project=event.data.project, pseudo_patient_id=event.data.pseudo_patient_id,
                                   arrived_at=start + timedelta(seconds=i))
    return progress


def test_manifest_count_reached_completes_at_once(two_series):
    progress = apply_manifest(None, manifest_for(two_series))
    partial = _accept(progress, two_series[:-1])
    assert completion(partial, T0, QUIET) is None
    full = _accept(partial, two_series[-1:])
    assert completion(full, T0, QUIET) == Completion(1, "study.completed", "manifest")


def test_manifest_before_or_after_the_instances_gives_the_same_progress(two_series):
    manifest = manifest_for(two_series)
    first = _accept(apply_manifest(None, manifest), two_series)
    last = apply_manifest(_accept(None, two_series), manifest)
    assert manifest_satisfied(first) and manifest_satisfied(last)
    assert to_json(first)["sop_uids"] == to_json(last)["sop_uids"]


def test_every_manifest_series_must_be_reached(two_series):
    manifest = manifest_for(two_series)
    axial = [e for e in two_series if e.data.series_uid == two_series[0].data.series_uid]
    # as many instances as expected in total, but all from the axial series (one received twice over)
    progress = _accept(apply_manifest(None, manifest), axial)
    progress = replace(progress, sop_uids=progress.sop_uids + ("2.25.1", "2.25.2", "2.25.3"))
    assert len(progress.sop_uids) == manifest.data.expected_instances
    assert not manifest_satisfied(progress)


def test_quiet_period_completes_a_study_without_manifest(two_series):
    progress = _accept(None, two_series)
    last = progress.last_arrival
    assert completion(progress, last + QUIET - timedelta(seconds=1), QUIET) is None
    assert completion(progress, last + QUIET, QUIET) == Completion(1, "study.completed", "quiet_period")


def test_nothing_to_emit_without_instances(two_series):
    progress = apply_manifest(None, manifest_for(two_series))
    assert completion(progress, T0 + timedelta(days=1), QUIET) is None


def test_late_arrival_gives_an_update_never_a_second_completed(two_series):
    progress = _accept(apply_manifest(None, manifest_for(two_series[:-1])), two_series[:-1])
    done = completion(progress, T0, QUIET)
    emitted = mark_emitted(progress, done)
    assert completion(emitted, T0 + timedelta(days=1), QUIET) is None  # nothing new since v1
    late = _accept(emitted, two_series[-1:], start=T0 + timedelta(minutes=5))
    assert completion(late, late.last_arrival, QUIET) is None  # waits for the quiet period
    update = completion(late, late.last_arrival + QUIET, QUIET)
    assert update == Completion(2, "study.updated", "manifest")
    assert completion(mark_emitted(late, update), late.last_arrival + QUIET, QUIET) is None


def test_manifest_satisfied_after_a_quiet_period_version_updates_at_once(two_series):
    progress = _accept(apply_manifest(None, manifest_for(two_series)), two_series[:4])
    v1 = completion(progress, progress.last_arrival + QUIET, QUIET)
    assert v1 == Completion(1, "study.completed", "quiet_period")
    rest = _accept(mark_emitted(progress, v1), two_series[4:], start=progress.last_arrival + QUIET)
    assert completion(rest, rest.last_arrival, QUIET) == Completion(2, "study.updated", "manifest")


def test_the_same_manifest_twice_changes_nothing(two_series):
    manifest = manifest_for(two_series)
    once = apply_manifest(None, manifest)
    assert apply_manifest(once, manifest) is once


def test_steps_do_not_mutate_their_input(two_series):
    progress = _accept(None, two_series[:2])
    before = to_json(progress)
    _accept(progress, two_series[2:])
    apply_manifest(progress, manifest_for(two_series))
    mark_emitted(progress, Completion(1, "study.completed", "manifest"))
    assert to_json(progress) == before


def test_json_round_trip(two_series):
    progress = mark_emitted(_accept(apply_manifest(None, manifest_for(two_series)), two_series),
                            Completion(1, "study.completed", "manifest"))
    assert from_json(to_json(progress)) == progress
    assert from_json(to_json(StudyProgress(study_uid="2.25.9"))) == StudyProgress(study_uid="2.25.9")
