"""The preset catalogue: complete entries, the hub repositories open_clip itself resolves, overrides."""

from __future__ import annotations

import json

import pytest

from fastslow_desktop.models import BundleError, load_bundle
from fastslow_desktop.models import presets

HUB_PRESETS = ("balanced", "fast", "multilingual", "accurate", "clip-vit-b-32")


def test_every_required_preset_is_in_the_catalogue():
    assert {"balanced", "fast", "multilingual", "accurate", "synthscenes", "clip-vit-b-32"} <= set(presets.names())
    assert presets.default_for_new_library() == "balanced"


@pytest.mark.parametrize("name", HUB_PRESETS)
def test_hub_presets_name_the_repository_open_clip_resolves(name):
    import open_clip

    entry = presets.entry(name)
    for part in ("fast", "slow"):
        spec = entry[part]
        cfg = open_clip.get_pretrained_cfg(spec["model"], spec["pretrained"])
        assert cfg, f"open_clip does not know {spec['model']} {spec['pretrained']}"
        assert spec["hub"] == cfg["hf_hub"].strip("/")
        assert spec["download_bytes"] > 50_000_000
    assert entry["languages"] and entry["accuracy"]["source"] and "value" in entry["accuracy"]
    assert set(entry["speed"]) >= {"images_per_s", "text_ms"}


def test_the_multilingual_preset_reads_many_languages():
    assert presets.entry("multilingual")["languages"] != ["en"]


def test_legacy_clip_vit_b_32_resolves_to_the_same_models_as_before():
    manifest = load_bundle("clip-vit-b-32").manifest
    assert manifest["fast"] == {"type": "open_clip_pretrained", "model": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"}
    assert manifest["slow"]["model"] == "coca_ViT-B-32"
    assert load_bundle("clip-vit-b-32").model_id == "open_clip:ViT-B-32:laion2b_s34b_b79k"  # old libraries stay valid


def test_synthscenes_stays_a_bundle_preset():
    assert presets.hub_manifest("synthscenes") is None and presets.repos("synthscenes") == []


def test_preset_infos_list_size_languages_speed_and_state_as_json(tmp_path, monkeypatch):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    rows = {r.name: r.to_dict() for r in presets.preset_infos()}
    json.dumps(rows)  # the CLI prints this with --json
    assert rows["balanced"]["default"] and not rows["balanced"]["downloaded"]
    assert rows["balanced"]["download_bytes"] == 605155332 + 1014240260
    assert rows["accurate"]["hardware"] == "cuda" and rows["clip-vit-b-32"]["legacy"]


def test_fastslow_presets_overrides_entries_by_name(tmp_path, monkeypatch):
    extra = {"presets": {"balanced": {"description": "tiny", "languages": ["en"],
                                      "fast": {"model": "hf-hub:o/tiny", "hub": "o/tiny"},
                                      "slow": {"model": "hf-hub:o/coca", "hub": "o/coca"}}}}
    (tmp_path / "p.json").write_text(json.dumps(extra))
    monkeypatch.setenv("FASTSLOW_PRESETS", str(tmp_path / "p.json"))
    assert presets.repos("balanced") == ["o/tiny", "o/coca"]
    assert presets.entry("fast")["fast"]["model"] == "MobileCLIP2-S0"  # the others stay
    (tmp_path / "p.json").write_text("{not json")
    with pytest.raises(BundleError, match="cannot be read"):
        presets.names()


def test_an_unknown_preset_name_is_a_clear_error():
    with pytest.raises(BundleError, match="no preset 'nope'.*balanced"):
        presets.download_preset("nope")
