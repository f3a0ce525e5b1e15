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
    total = sum(len(d) for r in (TINY_REPOS["fast"], TINY_REPOS["slow"]) for d in test_hub.repos[r].files.values())
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
    for repo in (TINY_REPOS["fast"], TINY_REPOS["slow"]):
        rec = hub_trust.recorded(repo, test_hub.repos[repo].commit)
        assert rec == {n: test_hub.repos[repo].sha256[n] for n in rec} and WEIGHTS in rec


def _weights_key(part: str = "fast") -> str:
    return f"{TINY_REPOS[part]}/{WEIGHTS}"


def _ranged_gets(server, name: str) -> list[int]:
    return [int(r.split("=")[1].rstrip("-")) for m, p, r in server.requests if m == "GET" and p.endswith(name) and r]


def test_cancel_then_resume_fetches_only_the_missing_bytes(test_hub):
    size = len(test_hub.repos[TINY_REPOS["fast"]].files[WEIGHTS])
    test_hub.delay_per_chunk = 0.01  # a slow link, so the cancel lands mid-file
    cancel = threading.Event()

    def on_progress(p):
        if p.file.endswith(WEIGHTS) and p.done > size // 3:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        presets.download_preset("balanced", progress=on_progress, cancel=cancel)
    assert not hub.is_cached(TINY_REPOS["fast"])
    first = test_hub.sent[_weights_key()]
    assert size // 3 < first < size
    test_hub.delay_per_chunk = 0
    seen, record = _progress_log()
    presets.download_preset("balanced", progress=record)
    resumed_at = _ranged_gets(test_hub, WEIGHTS)
    assert resumed_at and resumed_at[0] > 0  # a Range request, from where the cancelled one stopped
    resumed = [b for b in test_hub.bodies if b[0] == _weights_key() and b[1] > 0]
    assert resumed == [[_weights_key(), resumed_at[0], size - resumed_at[0]]]  # only the missing bytes
    first_weights_report = next(p for p in seen if p.file == _weights_key())
    assert first_weights_report.done > resumed_at[0]  # progress counts the bytes already on disk
    assert hub.is_cached(TINY_REPOS["fast"])
    load_bundle("balanced", device="cpu").fast  # the resumed file verifies and loads


def _partial_bytes(root) -> int:
    return sum(p.stat().st_size for p in (root / "hub").rglob("*.fastslow-part"))


def test_a_killed_download_resumes_in_the_next_process(test_hub, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    size = len(test_hub.repos[TINY_REPOS["fast"]].files[WEIGHTS])
    test_hub.delay_per_chunk = 0.02
    env = {**os.environ, **test_hub.env, "PYTHONPATH": os.getcwd()}
    env.pop("HF_HUB_OFFLINE", None)
    code = "from fastslow_desktop.models import presets; presets.download_preset('balanced')"
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.monotonic() + 120
        while _partial_bytes(tmp_path) < (1 << 20) and time.monotonic() < deadline:  # 1 MiB on disk
            assert proc.poll() is None, "the download finished or died before it could be killed"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    first = test_hub.sent[_weights_key()]
    assert 0 < first < size
    test_hub.delay_per_chunk = 0
    presets.download_preset("balanced")
    resumed_at = _ranged_gets(test_hub, WEIGHTS)
    assert resumed_at and resumed_at[-1] > 0
    resumed = [b for b in test_hub.bodies if b[0] == _weights_key() and b[1] > 0]
    assert resumed == [[_weights_key(), resumed_at[-1], size - resumed_at[-1]]]  # only the missing bytes
    assert load_bundle("balanced", device="cpu").fast.encode_texts(["a cat"]).shape == (1, 16)


def test_a_cached_file_changed_after_download_is_refused(test_hub):
    presets.download_preset("balanced")
    weights = hub.snapshot_dir(TINY_REPOS["fast"]) / WEIGHTS
    with open(weights.resolve(), "r+b") as fh:  # flip bytes inside the blob the snapshot links to
        fh.seek(200)
        fh.write(b"\x00\x01\x02\x03")
    with pytest.raises(ModelError, match=f"{WEIGHTS} was changed after FastSlow downloaded it"):
        load_bundle("balanced", device="cpu").fast


def test_a_damaged_transfer_is_not_trusted(test_hub):
    repo = test_hub.repos[TINY_REPOS["fast"]]
    good = repo.files[WEIGHTS]
    repo.files[WEIGHTS] = good[:100] + bytes(len(good) - 100)  # same size, other bytes; the listing keeps the hash
    with pytest.raises(ModelError, match="arrived damaged"):
        presets.download_preset("balanced")
    assert not hub.is_cached(TINY_REPOS["fast"])
    assert WEIGHTS not in hub_trust.recorded(TINY_REPOS["fast"], repo.commit)


def test_a_truncated_body_is_resumed_by_the_client(test_hub):
    size = len(test_hub.repos[TINY_REPOS["fast"]].files[WEIGHTS])
    test_hub.add_fault("truncate", WEIGHTS, after=size // 2, times=1)
    presets.download_preset("balanced")
    assert _ranged_gets(test_hub, WEIGHTS)  # the retry asked only for the rest
    load_bundle("balanced", device="cpu").fast


def _assert_clear_offline_error(exc_info, started: float, limit: float) -> None:
    message = str(exc_info.value)
    assert "fastslow demo" in message and "--models PATH" in message
    assert time.monotonic() - started < limit


def test_http_500_fails_with_a_clear_error(test_hub):
    test_hub.add_fault("500", WEIGHTS, times=-1)
    started = time.monotonic()
    with pytest.raises(ModelUnavailableError) as exc_info:
        presets.download_preset("balanced")
    _assert_clear_offline_error(exc_info, started, 60)
    assert "500" in str(exc_info.value)
    assert not hub.is_cached(TINY_REPOS["fast"])


def test_a_stalled_server_fails_within_the_timeout(test_hub):
    test_hub.add_fault("stall", WEIGHTS, after=64 * 1024, times=-1)
    started = time.monotonic()
    with pytest.raises(ModelUnavailableError) as exc_info:
        presets.download_preset("balanced")
    _assert_clear_offline_error(exc_info, started, 90)
    assert not hub.is_cached(TINY_REPOS["fast"])


def test_an_unreachable_hub_fails_within_five_seconds(test_hub, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(ModelUnavailableError) as exc_info:
        load_bundle("balanced", device="cpu").fast
    _assert_clear_offline_error(exc_info, started, 5)


def test_not_enough_disk_space_is_said_before_downloading(test_hub, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(ModelError, match="Not enough disk space"):
        presets.download_preset("balanced")
    assert not any(m == "GET" and "/resolve/" in p for m, p, _ in test_hub.requests)


def test_a_full_disk_mid_download_is_a_clear_error_and_nothing_half_written_is_trusted(test_hub, monkeypatch):
    import errno

    import huggingface_hub.file_download as fd

    real_http_get = fd.http_get

    class FullDisk:
        def __init__(self, fh):
            self._fh, self._left = fh, 100_000

        def write(self, data):
            if len(data) > self._left:
                raise OSError(errno.ENOSPC, "No space left on device")
            self._left -= len(data)
            return self._fh.write(data)

        def __getattr__(self, name):
            return getattr(self._fh, name)

    monkeypatch.setattr(fd, "http_get", lambda url, temp_file, **kw: real_http_get(url, FullDisk(temp_file), **kw))
    with pytest.raises(ModelError, match="Not enough disk space"):
        presets.download_preset("balanced")
    assert not hub.is_cached(TINY_REPOS["fast"])
    commit = test_hub.repos[TINY_REPOS["fast"]].commit
    assert WEIGHTS not in hub_trust.recorded(TINY_REPOS["fast"], commit)
    monkeypatch.setattr(fd, "http_get", real_http_get)  # space freed: the next try completes and verifies
    presets.download_preset("balanced")
    assert hub_trust.recorded(TINY_REPOS["fast"], commit)[WEIGHTS] == test_hub.repos[TINY_REPOS["fast"]].sha256[WEIGHTS]


def test_a_siglip2_style_preset_downloads_its_hf_tokenizer_and_reads_other_languages(test_hub):
    repo = TINY_REPOS["multilingual"]
    presets.download_preset("multilingual")
    folder = hub.snapshot_dir(repo)
    assert (folder / "tokenizer.json").is_file() and not (folder / "README.md").exists()
    models = load_bundle("multilingual", device="cpu")
    emb = models.fast.encode_texts(["un chien rouge", "ein hund", "a red dog"])
    assert emb.shape == (3, 64) and len({tuple(np.round(r, 5)) for r in emb}) == 3  # words, not all <unk>
    assert models.fast.encode_images([Image.new("RGB", (50, 40), "blue")]).shape == (1, 64)
    recorded = hub_trust.recorded(repo, test_hub.repos[repo].commit)
    assert {"tokenizer.json", "tokenizer_config.json", WEIGHTS} <= set(recorded)
    (folder / "tokenizer.json").resolve().write_text("{}")  # a changed tokenizer is refused too
    with pytest.raises(ModelError, match="tokenizer.json was changed"):
        load_bundle("multilingual", device="cpu").fast


def test_a_mobileclip_style_preset_with_a_fastvit_tower_downloads_and_embeds(test_hub):
    repo = TINY_REPOS["fastvit"]
    presets.download_preset("fast")
    models = load_bundle("fast", device="cpu")
    images = [Image.new("RGB", (80, 60), c) for c in ("red", "blue")]
    emb = models.fast.encode_images(images)
    assert emb.shape == (2, 32) and np.isfinite(emb).all()
    assert not np.allclose(emb[0], emb[1])  # the FastViT trunk really ran on the pixels
    np.testing.assert_allclose(np.linalg.norm(models.fast.encode_texts(["a dog"]), axis=1), 1, atol=1e-5)
    assert WEIGHTS in hub_trust.recorded(repo, test_hub.repos[repo].commit)


def test_http_500_from_the_hub_api_fails_with_a_clear_error(test_hub):
    test_hub.add_fault("500", "api", times=-1)
    started = time.monotonic()
    with pytest.raises(ModelUnavailableError) as exc_info:
        presets.download_preset("balanced")
    _assert_clear_offline_error(exc_info, started, 60)
    assert "500" in str(exc_info.value) and "balanced" in str(exc_info.value)


def test_cached_hub_files_are_hashed_once_then_trusted_until_they_change(tmp_path, monkeypatch):
    from fastslow_desktop.models import checksums

    files = {name: tmp_path / name for name in ("open_clip_config.json", WEIGHTS)}
    for i, path in enumerate(files.values()):
        path.write_bytes(bytes([i]) * 4096)
    calls = []
    real = checksums.sha256_file
    monkeypatch.setattr(checksums, "sha256_file", lambda p: calls.append(p) or real(p))
    hub_trust.verify("org/tiny", "c0ffee", files)  # first use: hashed and recorded
    hub_trust.verify("org/tiny", "c0ffee", files)  # a later load: trusted, no re-read of the weights
    assert len(calls) == 2
    files[WEIGHTS].write_bytes(b"\x07" * 4096)  # changed on disk: hashed again and refused
    with pytest.raises(ModelError, match="changed after FastSlow downloaded it"):
        hub_trust.verify("org/tiny", "c0ffee", files)
    assert len(calls) == 3
