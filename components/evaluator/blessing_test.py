"""The blessing decision on hand-made metrics: thresholds, missing metrics, baseline comparison."""

import math

import pytest

from components.evaluator.blessing import BlessingPolicy, decide, score

POLICY = BlessingPolicy(
    lower_bounds=(("zero_shot/*/accuracy", 0.2), ("retrieval/*/recall@5", 0.3)),
    comparison_metrics=("zero_shot/*/accuracy", "retrieval/*/recall@1"),
    max_regression=0.0)


def metrics(image=0.5, audio=0.4, r1=0.2, r5=0.6):
    return {"zero_shot/image_cls/accuracy": image, "zero_shot/audio_cls/accuracy": audio,
            "retrieval/video_text/video_to_text/recall@1": r1,
            "retrieval/video_text/video_to_text/recall@5": r5,
            "retrieval/video_text/video_to_text/recall@10": 0.9,
            "loss/video_text": 3.0}


def test_first_model_above_thresholds_is_blessed():
    decision = decide(metrics(), None, POLICY)
    assert decision.blessed, decision.explain()
    assert decision.baseline_score is None
    assert decision.score == pytest.approx((0.5 + 0.4 + 0.2) / 3)


def test_one_task_below_its_threshold_blocks():
    decision = decide(metrics(audio=0.15), None, POLICY)
    assert not decision.blessed
    assert decision.failures == ("zero_shot/audio_cls/accuracy = 0.1500 < 0.2",)


def test_a_threshold_without_matching_metric_fails_instead_of_passing():
    only_zero_shot = {k: v for k, v in metrics().items() if k.startswith("zero_shot")}
    decision = decide(only_zero_shot, None, POLICY)
    assert not decision.blessed
    assert any("no metric matches 'retrieval/*/recall@5'" in f for f in decision.failures)


def test_nan_metric_fails_its_threshold():
    assert not decide(metrics(image=float("nan")), None, POLICY).blessed


def test_better_or_equal_than_baseline_is_blessed_worse_is_not():
    baseline = metrics(image=0.5, audio=0.4, r1=0.2)
    assert decide(metrics(image=0.6), baseline, POLICY).blessed
    assert decide(baseline, baseline, POLICY).blessed  # "not worse" includes equal
    worse = decide(metrics(image=0.45), baseline, POLICY)
    assert not worse.blessed
    assert worse.baseline_score == pytest.approx(score(baseline, POLICY.comparison_metrics))
    assert "< baseline" in worse.failures[0]


def test_max_regression_tolerates_small_drops_only():
    tolerant = BlessingPolicy(lower_bounds=POLICY.lower_bounds,
                              comparison_metrics=POLICY.comparison_metrics, max_regression=0.05)
    baseline = metrics(image=0.5)
    assert decide(metrics(image=0.4), baseline, tolerant).blessed   # mean drops by 0.033
    assert not decide(metrics(image=0.3), baseline, tolerant).blessed  # mean drops by 0.067


def test_comparison_uses_the_mean_so_one_noisy_metric_does_not_block():
    baseline = metrics(image=0.5, audio=0.4)
    assert decide(metrics(image=0.7, audio=0.3), baseline, POLICY).blessed


def test_baseline_without_comparable_metrics_falls_back_to_thresholds():
    decision = decide(metrics(), {"loss/x": 1.0}, POLICY)
    assert decision.blessed and decision.baseline_score is None


def test_thresholds_alone_can_block_a_model_better_than_its_baseline():
    assert not decide(metrics(image=0.1, audio=0.1), metrics(image=0.05, audio=0.05), POLICY).blessed


def test_score_ignores_unmatched_and_non_finite():
    assert score({"a/x": 1.0, "a/y": float("nan"), "b": 5.0}, ["a/*"]) == 1.0
    assert math.isnan(score({"b": 1.0}, ["a/*"]))


def test_policy_json_round_trip_and_validation():
    assert BlessingPolicy.from_json(POLICY.to_json()) == POLICY
    with pytest.raises(ValueError):
        BlessingPolicy(max_regression=-0.1)
    with pytest.raises(ValueError):
        BlessingPolicy(comparison_metrics=())
    with pytest.raises(ValueError):
        BlessingPolicy(lower_bounds=(("x", float("inf")),))
