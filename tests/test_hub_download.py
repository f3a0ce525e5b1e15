"""The download path end to end through a loopback test hub: first run, resume, tamper, faults."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PIL import Image

from fastslow_desktop.models import DownloadCancelled, ModelError, ModelUnavailableError, load_bundle
from fastslow_desktop.models import hub, hub_trust, presets
from tests.hubserver import TINY_REPOS, test_hub  # noqa: F401  (fixture)

WEIGHTS = "open_clip_model.safetensors"


def _progress_log():
    seen = []
    return seen, seen.append


def test_first_download_then_the_preset_loads_and_encodes(test_hub):
    assert not [p for p in presets.preset_infos() if p.name == "balanced"][0].downloaded
    seen, record = _progress_log()
    presets.download_preset("balanced", progress=record)
    total = sum(len(d) for r in TINY_REPOS.values() for d in test_hub.repos[r].files.values())
    assert seen and seen[-1].done == seen[-1].total == total
    assert all(p.speed_bps >= 0 for p in seen) and seen[-1].eta_s == pytest.approx(0, abs=1e-6)
    assert [p for p in presets.preset_infos() if p.name == "balanced"][0].downloaded
    models = load_bundle("balanced", device="cpu")
    assert models.needs_download() == []
    img = Image.new("RGB", (40, 30), "red")
    assert models.fast.encode_images([img]).shape == (1, 16)
    np.testing.assert_allclose(np.linalg.norm(models.fast.encode_texts(["a dog"]), axis=1), 1, atol=1e-5)
    assert np.isfinite(models.slow.score("a dog", [img])).all()
    # every fetched file's sha256 is on record (trust on first use)
    for repo in TINY_REPOS.values():
        rec = hub_trust.recorded(repo, test_hub.repos[repo].commit)
        assert rec == {n: test_hub.repos[repo].sha256[n] for n in rec} and WEIGHTS in rec
