"""training: readers, losses, checkpoints, and the whole smoke pipeline in-process."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from fastslow_desktop.models import load_bundle
from training import checkpoint, loop
from training.data import (
    read_coco_captions,
    read_flickr30k_karpathy,
    read_jsonl_manifest,
)
from training.distill import main
from training.losses import contrastive_loss, distillation_loss, hardest_others

ALL_ROWS = {"fast", "fast_distilled", "fast_distilled_cached", "fast_attentive_mask", "fast_from_slow",
            "fast_decomposed_scratch", "slow", "slow_coarse", "rerank"}


def test_smoke_preset_runs_end_to_end_and_exports_a_loadable_bundle(tmp_path):
    args = ["--preset", "smoke", "--ablations", "--out", str(tmp_path / "run"), "--log-level", "WARNING"]
    assert main(args) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    models = {row["model"] for row in report["results"]}
    assert models == ALL_ROWS
    assert report["resumed"] is False  # every stage trained by this run: its wall times are whole
    # every row, ablations included, also on the shifted test set (another renderer), in the same format
    assert [(r["model"], r["K"], sorted(r)) for r in report["results_shifted"]] == \
        [(r["model"], r["K"], sorted(r)) for r in report["results"]]
    assert report["calibration"]["queries"]["present"] == report["calibration"]["queries"]["removed"] > 0
    assert sorted(r["K"] for r in report["results"] if r["model"] == "rerank") == [5, 10, 20, 50]
    for row in report["results"]:
        assert 0 <= row["R@1"] <= row["R@5"] <= row["R@10"] <= 100 and row["ms_per_query"] > 0
        assert row["training_cost"] and row["train_seconds"] > 0
    pairs = {r["model"]: r["teacher_pairs"] for r in report["results"]}
    assert 0 < pairs["fast_distilled_cached"] < pairs["fast_distilled"]  # scored once, not every step
    assert pairs["fast"] == pairs["slow"] == 0
    assert report["shipped_fast_model"] in ("fast_distilled", "fast_distilled_cached")
    assert report["seconds_to_bundle"] <= report["seconds_core"] <= report["seconds_total"]
    grid = report["validation"]["rerank_R@1_by_K_beta"]
    assert {"1", "10", "100"} <= set(grid) and all(len(row) == 6 for row in grid.values())
    assert (tmp_path / "run" / "rerank_k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bundle = load_bundle(tmp_path / "run" / "bundle")
    # exported before the test rows, which are then added to its provenance
    metrics = bundle.manifest["provenance"]["metrics"]
    assert metrics["slow"] == next(r["R@1"] for r in report["results"] if r["model"] == "slow")
    assert metrics["shifted:rerank@10"] == next(r["R@1"] for r in report["results_shifted"]
                                                 if r["model"] == "rerank" and r["K"] == 10)
    emb = bundle.fast.encode_texts(["a red circle"])
    assert emb.shape == (1, bundle.embedding_dim)
    assert bundle.rerank_config.k in (5, 10, 20, 50)
    # One table per test set (standard and shifted), each with a row per re-rank K.
    assert (tmp_path / "run" / "report.md").read_text().count("| rerank |") == 2 * 4


def test_interrupted_stage_resumes_from_its_last_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    args = ["--preset", "smoke", "--out", str(out), "--log-level", "WARNING"]

    def crash(stage, step):
        if stage == "slow" and step == 25:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "_after_step", crash)
    with pytest.raises(KeyboardInterrupt):
        main(args)
    assert checkpoint.done_info(out / "stages" / "fast") is not None  # the earlier stage is finished
    assert json.loads((out / "stages" / "slow" / "state.json").read_text())["step"] == 20  # checkpoint_every=20

    steps_seen = []
    monkeypatch.setattr(loop, "_after_step", lambda stage, step: steps_seen.append((stage, step)))
    assert main(args) == 0
    slow_steps = [s for stage, s in steps_seen if stage == "slow"]
    assert slow_steps[0] == 21 and slow_steps[-1] == 40  # continued, not restarted
    assert not any(stage == "fast" for stage, _ in steps_seen)  # a finished stage is not re-run
    assert checkpoint.done_info(out / "stages" / "slow")["steps_run"] == 20
    report = json.loads((out / "report.json").read_text())
    assert report["resumed"] and report["stages"]["fast"]["from_earlier_run"]
    assert "of this resumed run only" in (out / "report.md").read_text()


@pytest.mark.parametrize("flags, message", [
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--fast-steps", "-5"], "--fast-steps must be at least 0"),
    (["--batch-size", "0"], "--batch-size must be at least 2"),
    (["--fast-arch", "no-such-arch"], "unknown architecture 'no-such-arch'"),
    (["--data", "coco:/no/such/folder"], "/no/such/folder does not exist"),
])
def test_bad_settings_are_refused_before_anything_is_written(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    assert main(["--preset", "smoke", *flags, "--out", str(out), "--log-level", "WARNING"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_run_folder_made_with_other_settings_is_refused_not_resumed(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"preset": "smoke", "fast_steps": 40, "seed_runs": 1}))
    assert main(["--preset", "smoke", "--fast-steps", "80", "--out", str(out), "--log-level", "WARNING"]) == 2
    err = capsys.readouterr().err
    assert "fast_steps=40 (now 80)" in err and "another --out" in err and "seed_runs" not in err
    assert json.loads((out / "config.json").read_text())["fast_steps"] == 40  # left as it was
    (tmp_path / "a file").write_text("")
    assert main(["--preset", "smoke", "--out", str(tmp_path / "a file"), "--log-level", "WARNING"]) == 2
    assert "is a file, not a run folder" in capsys.readouterr().err


def test_identical_captions_in_a_batch_are_not_negatives():
    torch.manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    scale = torch.tensor(10.0)
    logits = scale * img @ txt.T
    logits[0, 1] = logits[1, 0] = float("-inf")  # rows 0 and 1 share a caption: neither is the other's negative
    target = torch.arange(3)
    expected = (torch.nn.functional.cross_entropy(logits, target)
                + torch.nn.functional.cross_entropy(logits.T, target)) / 2
    got = contrastive_loss(img, txt, scale, ["a red circle", "a red circle", "a blue star"])
    assert torch.isclose(got, expected)
    assert not torch.isclose(got, contrastive_loss(img, txt, scale, ["x", "y", "z"]))


def test_a_swapped_caption_is_one_more_negative_of_its_own_image_only():
    torch.manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    swapped = torch.nn.functional.normalize(torch.randn(8), dim=-1)
    scale, captions = torch.tensor(10.0), ["x", "y", "z"]
    none = torch.full((3,), float("-inf"))
    assert torch.isclose(contrastive_loss(img, txt, scale, captions, extra_negatives=none),
                         contrastive_loss(img, txt, scale, captions))
    extra = none.clone()
    extra[1] = img[1] @ swapped  # image 1's caption with its objects swapped
    logits = scale * img @ txt.T
    rows = torch.cat([logits, scale * extra[:, None]], 1)  # the text-to-image direction is unchanged
    target = torch.arange(3)
    expected = (torch.nn.functional.cross_entropy(rows, target)
                + torch.nn.functional.cross_entropy(logits.T, target)) / 2
    assert torch.isclose(contrastive_loss(img, txt, scale, captions, extra_negatives=extra), expected)
    learned = torch.tensor(10.0, requires_grad=True)  # rows without a swapped caption give it no NaN gradient
    contrastive_loss(img, txt, learned, captions, extra_negatives=extra).backward()
    assert torch.isfinite(learned.grad)


def test_swapped_objects_keeps_the_relation_and_leaves_other_captions_alone():
    from fastslow_desktop.synthscenes import Scene, SceneObject, satisfies
    from training.data import swapped_objects

    caption = "a blue square below a purple circle"
    assert swapped_objects(caption) == "a purple circle below a blue square"
    scene = Scene("pair", (SceneObject("square", "blue", "large", 0.5, 0.8),
                           SceneObject("circle", "purple", "small", 0.5, 0.2)))
    assert satisfies(scene, caption) and not satisfies(scene, swapped_objects(caption))
    assert swapped_objects("a large red circle") is None and swapped_objects("two small red stars") is None
    assert swapped_objects("a photo of a dog") is None


def test_hardest_others_skips_the_captions_own_duplicates():
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.1], [0.2, 0.9, 0.3, 0.4], [0.1, 0.2, 0.9, 0.5], [0.0, 0.0, 0.0, 1.0]])
    cand = hardest_others(scores, ["a", "a", "b", "c"], m=2)
    assert cand[0].tolist() == [0, 2, 3]  # row 1 carries the same caption: not a negative of row 0
    assert cand[2].tolist() == [2, 3, 1]


def test_distillation_with_a_one_hot_teacher_is_cross_entropy():
    student = torch.tensor([[2.0, 1.0, 0.0]])
    teacher = torch.tensor([[100.0, 0.0, 0.0]])
    expected = torch.nn.functional.cross_entropy(student / 0.5, torch.tensor([0]))
    assert torch.isclose(distillation_loss(student, teacher, 0.5, 1.0), expected)


def test_checkpoint_restores_weights_and_optimizer_state(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    checkpoint.save(tmp_path, {"m": model}, opt, step=7)
    clone = torch.nn.Linear(3, 2)
    opt2 = torch.optim.AdamW(clone.parameters(), lr=0.1)
    assert checkpoint.load(tmp_path, {"m": clone}, opt2)["step"] == 7
    torch.testing.assert_close(clone.weight, model.weight)
    s1, s2 = opt.state_dict()["state"][0], opt2.state_dict()["state"][0]
    torch.testing.assert_close(s1["exp_avg"], s2["exp_avg"])
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.pkl"))


def _jpeg(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 20), "red").save(path)
    return path


def test_coco_captions_reader_joins_images_and_annotations(tmp_path):
    _jpeg(tmp_path / "train2017" / "000001.jpg")
    ann = {"images": [{"id": 1, "file_name": "000001.jpg"}, {"id": 2, "file_name": "nocaption.jpg"}],
           "annotations": [{"image_id": 1, "caption": "A dog. "}, {"image_id": 1, "caption": "a pet"}]}
    (tmp_path / "captions.json").write_text(json.dumps(ann))
    items = read_coco_captions(tmp_path / "captions.json", tmp_path / "train2017")
    assert len(items) == 1 and items[0].captions == ["A dog.", "a pet"]
    assert items[0].load().size == (20, 20)


def test_flickr30k_karpathy_reader_keeps_the_requested_split(tmp_path):
    _jpeg(tmp_path / "images" / "1.jpg")
    data = {"images": [
        {"filename": "1.jpg", "split": "train", "sentences": [{"raw": "two men"}]},
        {"filename": "2.jpg", "split": "restval", "sentences": [{"raw": "a bike"}]},
        {"filename": "3.jpg", "split": "test", "sentences": [{"raw": "a cat"}]},
    ]}
    (tmp_path / "dataset_flickr30k.json").write_text(json.dumps(data))
    assert [i.captions[0] for i in read_flickr30k_karpathy(tmp_path / "dataset_flickr30k.json", "train")] == \
        ["two men", "a bike"]
    assert [i.captions[0] for i in read_flickr30k_karpathy(tmp_path / "dataset_flickr30k.json", "test")] == ["a cat"]


def test_jsonl_manifest_reader_resolves_relative_paths(tmp_path):
    _jpeg(tmp_path / "pics" / "a.jpg")
    (tmp_path / "m.jsonl").write_text(json.dumps({"image": "pics/a.jpg", "captions": ["a red square"]}) + "\n\n")
    items = read_jsonl_manifest(tmp_path / "m.jsonl")
    assert items[0].image == tmp_path / "pics" / "a.jpg" and items[0].load().mode == "RGB"
