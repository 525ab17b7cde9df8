"""summary.json: the best row per test set and stage, and the spread over each sweep's rows."""
import pytest

from gsm_pipeline.reporting.comparison import method, summary


def row(experiment, accuracy, variant_of=None, stage="rl", run=None, **swept):
    return {"experiment": experiment, "stage": stage, "testset": "t", "prompt": "tagged-chat", "n": 10,
            "accuracy_strict": accuracy, "accuracy_flexible": accuracy, "answer_rate": 1.0, "variant_of": variant_of,
            "run": run or f"{stage}-{experiment}", **{f"swept:{k}": v for k, v in swept.items()}}


def test_over_seeds_a_sweep_gets_mean_sample_sd_and_a_t_interval_and_the_best_row_is_named():
    rows = [row("plain", 0.5), *(row(f"s-seed{i}", a, "s", seed=i) for i, a in enumerate((0.2, 0.4, 0.6)))]
    out = summary(rows, {"config_hash": "abc", "seed": 0})
    [sweep] = out["sweeps"]
    assert (sweep["variant_of"], sweep["over"], sweep["runs"]) == ("s", "seed", 3)
    assert sweep["mean_accuracy_strict"] == pytest.approx(0.4) and sweep["min"] == 0.2 and sweep["max"] == 0.6
    assert sweep["sd_accuracy_strict"] == pytest.approx(0.2)  # the sample SD, the one inside the interval
    # mean +- t(0.975, 2 dof) * sample sd / sqrt(3), t = 4.3027 by the table, kept within [0, 1]
    assert (sweep["ci95_low"], sweep["ci95_high"]) == pytest.approx((0.0, 0.4 + 4.3027 * 0.2 / 3 ** 0.5), abs=1e-4)
    inside = summary([row(f"s-seed{i}", a, "s", seed=i) for i, a in enumerate((0.4, 0.5, 0.6))], {})["sweeps"][0]
    assert (inside["ci95_low"], inside["ci95_high"]) == pytest.approx((0.5 - 0.24842, 0.5 + 0.24842), abs=1e-4)
    alone = summary([row("s-seed0", 0.3, "s", seed=0)], {})["sweeps"][0]
    assert (alone["ci95_low"], alone["ci95_high"], alone["summary"]) == (None, None, "one row")
    assert out["best_by_testset_and_stage"]["t/rl"]["experiment"] == "s-seed2"


def test_a_model_every_row_shares_is_one_run_without_spread():
    """The base (or a prep SFT no swept key reaches) appears under every row of the sweep: counted once, it
    has no spread, not a zero-width interval that reads as certainty."""
    rows = [row(f"s-seed{i}", 0.3, "s", stage="base", run="base", seed=i) for i in range(3)]
    rows += [row(f"s-seed{i}", a, "s", seed=i) for i, a in enumerate((0.2, 0.4, 0.6))]
    base, grpo = summary(rows, {})["sweeps"]
    assert (base["stage"], base["runs"], base["summary"]) == ("base", 1, "one model, shared by every row")
    assert (base["ci95_low"], base["ci95_high"], base["sd_accuracy_strict"]) == (None, None, None)
    assert grpo["runs"] == 3 and grpo["ci95_low"] is not None


def test_a_sweep_over_a_setting_is_a_range_not_an_interval():
    lr = "overrides.full_sft.training_args.learning_rate"
    rows = [row("s-lr1", 0.35, "s", **{lr: 1e-5}), row("s-lr2", 0.6, "s", **{lr: 1e-4})]
    [sweep] = summary(rows, {})["sweeps"]
    assert (sweep["over"], sweep["runs"], sweep["min"], sweep["max"]) == (lr, 2, 0.35, 0.6)
    assert sweep["summary"].startswith("range over different settings")
    assert (sweep["mean_accuracy_strict"], sweep["ci95_low"], sweep["ci95_high"]) == (None, None, None)


def test_a_seed_by_setting_sweep_has_an_interval_over_seeds_for_each_setting():
    lr = "overrides.full_sft.training_args.learning_rate"
    rows = [row(f"s-seed{i}-lr{v}", a + (0.3 if v == 1e-4 else 0), "s", seed=i, **{lr: v})
            for v in (1e-5, 1e-4) for i, a in enumerate((0.1, 0.2, 0.3))]
    low, high = summary(rows, {})["sweeps"]
    assert (low["over"], low["holding"], low["runs"]) == ("seed", f"{lr}=1e-05", 3)
    assert (high["over"], high["holding"], high["runs"]) == ("seed", f"{lr}=0.0001", 3)
    assert low["mean_accuracy_strict"] == pytest.approx(0.2) and high["mean_accuracy_strict"] == pytest.approx(0.5)
    assert high["ci95_high"] - 0.3 == pytest.approx(low["ci95_high"])  # the same spread, shifted: nothing pooled


@pytest.mark.parametrize("stage, chat, answer_only, expected", [
    ("full_sft", True, True, "full_sft chat answer-loss"),
    ("full_sft", False, False, "full_sft raw full-loss"),
    ("rl", False, True, "grpo raw"),
    ("base", True, True, "base (prompting)"),
])
def test_the_method_column_names_the_training_choices(stage, chat, answer_only, expected):
    assert method(stage, {"chat_template": chat, "completion_only_loss": answer_only}) == expected


def test_forgetting_sets_each_stages_gain_beside_what_it_lost_on_the_battery_both_against_its_parent():
    """One row per trained model under its own prompt (a stage two rows share counts once): its gain on the trained
    set over its parent, its loss on each battery set (parent minus model), their mean, and its KL(base || model)."""
    from gsm_pipeline.reporting.forgetting import forgetting_columns, forgetting_rows

    def ev(run, stage, parent, testset, accuracy, kl=None, experiment="a", matches=True):
        return {"experiment": experiment, "stage": stage, "run": run, "parent": parent, "testset": testset,
                "prompt": "raw", "trained": run, "method": stage, "eval_matches_training": matches,
                "accuracy_strict": accuracy, "p_strict_vs_parent": 0.01, "kl_from_base_per_completion": kl}

    rows = [ev("base", "base", "", "id", 0.0), ev("base", "base", "", "sub", 0.0),
            ev("prep", "prep_sft", "base", "id", 0.5, 1.0), ev("prep", "prep_sft", "base", "sub", 0.3, 1.0),
            ev("prep", "prep_sft", "base", "mul", 0.2, 1.0), ev("base", "base", "", "mul", 0.1),
            ev("sft", "full_sft", "prep", "id", 0.8, 3.0), ev("sft", "full_sft", "prep", "sub", 0.1, 3.0),
            ev("sft", "full_sft", "prep", "mul", 0.1, 3.0),
            ev("rl", "rl", "prep", "id", 0.7, 0.5), ev("rl", "rl", "prep", "sub", 0.3, 0.5),
            ev("rl", "rl", "prep", "mul", 0.25, 0.5),
            ev("prep", "prep_sft", "base", "id", 0.5, 1.0, experiment="b"),  # shared by a second row
            ev("rl", "rl", "prep", "id", 0.6, 0.5, matches=False)]  # asked another way: not its own prompt
    out = forgetting_rows(rows, "id", ["sub", "mul"])
    table = {r["trained"]: r for r in out}
    assert [r["trained"] for r in out] == ["prep", "sft", "rl"]
    assert table["sft"]["gain"] == pytest.approx(0.3) and table["rl"]["gain"] == pytest.approx(0.2)
    assert (table["sft"]["forgot:sub"], table["sft"]["forgot:mul"]) == pytest.approx((0.2, 0.1))
    assert table["sft"]["forgetting"] == pytest.approx(0.15) and table["rl"]["forgetting"] == pytest.approx(-0.025)
    assert table["prep"]["forgetting"] == pytest.approx((-0.3 + -0.1) / 2)  # it learnt there too: negative
    assert (table["sft"]["kl_from_base"], table["rl"]["kl_from_base"]) == (3.0, 0.5)
    assert set(forgetting_columns(["sub", "mul"])) >= set(table["sft"])
    assert forgetting_rows(rows, "id", [])[0]["forgetting"] is None  # no battery: nothing to forget on
