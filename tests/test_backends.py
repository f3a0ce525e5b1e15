"""Fast-tower inference backends: the automatic choice by CPU flags, `--backend` / FASTSLOW_BACKEND,
the cosine guard, the ONNX export cache (and its breakage), and indexing end to end on ONNX."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from fastslow_desktop.cli import build_parser, main
from fastslow_desktop.models import backends, load_bundle
from fastslow_desktop.models.backends import TorchBackend, auto_choice, cpu_flags, requested, select_backend
from fastslow_desktop.options import apply_backend_option
from fastslow_desktop.paths import cache_dir
from tests.helpers import make_tiny_bundle

needs_onnx = pytest.mark.skipif(not backends.onnx_available(), reason="onnxruntime/onnx not installed")
TEXTS = ["a red circle left of a blue square", "a photo", "green triangle"]


@pytest.fixture(autouse=True)
def _no_override(monkeypatch):
    """`--backend` is process-wide: each test starts and ends without one."""
    monkeypatch.delenv(backends.ENV, raising=False)
    backends.set_override(None)
    yield
    backends.set_override(None)


@pytest.fixture
def encoder(tiny_bundle):
    return load_bundle(tiny_bundle, device="cpu").fast


def _pixels(encoder, n: int = 6) -> torch.Tensor:
    size = int(encoder.preprocess.config.image_size)
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(7))


def _min_cos(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum(axis=1).min())  # rows are unit vectors


# -- the automatic choice -------------------------------------------------------------------------
@pytest.mark.parametrize(("device", "flags", "expected"), [
    ("cpu", {"sse4_2", "avx2", "fma"}, "torch"),  # AMD EPYC / AVX2 only: bf16 would be emulated (slow)
    ("cpu", {"avx2", "avx512f", "avx512_vnni"}, "torch"),  # AVX-512 without BF16
    ("cpu", {"avx2", "avx512f", "avx512_bf16"}, "bf16"),
    ("cpu", {"avx2", "amx_tile", "amx_bf16"}, "bf16"),
    ("cuda", {"avx2"}, "fp16"),
    ("cuda", {"amx_bf16"}, "fp16"),
])
def test_auto_choice_by_hardware(device, flags, expected):
    assert auto_choice(device, frozenset(flags)) == expected


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu avx2 avx512f amx_bf16 amx_tile\n\n"
                    "processor\t: 1\nflags\t\t: fpu avx2\n")
    assert cpu_flags(str(info)) == {"fpu", "avx2", "avx512f", "amx_bf16", "amx_tile"}
    assert cpu_flags(str(tmp_path / "missing")) == frozenset()


@pytest.mark.parametrize(("flags", "expected"), [({"avx2"}, "torch"), ({"avx2", "amx_bf16"}, "bf16")])
def test_auto_selection_on_a_model_follows_the_flags(encoder, monkeypatch, flags, expected):
    monkeypatch.setattr(backends, "cpu_flags", lambda: frozenset(flags))
    assert encoder.use_backend(None) == expected and encoder.backend.name == expected


def test_fp16_is_the_cuda_path_and_refused_without_a_gpu(encoder, caplog):
    class OnCuda:  # a mocked device: the backend is built (not run) for a model on CUDA
        device, model = torch.device("cuda"), encoder.model

    backend = backends.build_backend("fp16", OnCuda())
    assert (backend.name, backend.dtype, backend.device.type) == ("fp16", torch.float16, "cuda")
    with pytest.raises(backends.BackendUnavailable):
        backends.build_backend("bf16", OnCuda())
    with caplog.at_level(logging.WARNING, logger="fastslow_desktop.models.backends"):
        assert encoder.use_backend("fp16") == "torch"
    assert "fp16 needs a CUDA GPU" in caplog.text


# -- the option and the setting -------------------------------------------------------------------
def test_backend_option_before_or_after_the_command_and_its_choices(capsys):
    parser = build_parser()
    assert parser.parse_args(["--backend", "onnx", "status"]).backend == "onnx"
    assert parser.parse_args(["status", "--backend", "bf16"]).backend == "bf16"
    assert parser.parse_args(["status"]).backend is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--backend", "tpu", "status"])
    assert "invalid choice" in capsys.readouterr().err


def test_option_overrides_the_environment_which_overrides_auto(monkeypatch, caplog):
    assert requested() == "auto"
    monkeypatch.setenv(backends.ENV, "BF16")
    assert requested() == "bf16"
    apply_backend_option(build_parser().parse_args(["--backend", "onnx", "status"]))
    assert requested() == "onnx"
    apply_backend_option(build_parser().parse_args(["status"]))  # the next command, without the option
    assert requested() == "bf16"
    monkeypatch.setenv(backends.ENV, "quantum")
    with caplog.at_level(logging.WARNING):
        assert requested() == "auto"
    assert "quantum" in caplog.text


def test_requested_backend_is_the_one_used(encoder, monkeypatch):
    monkeypatch.setattr(backends, "cpu_flags", lambda: frozenset({"avx2"}))  # auto would be torch
    monkeypatch.setenv(backends.ENV, "bf16")
    assert encoder.use_backend(None) == "bf16" and encoder.backend.name == "bf16"


def test_measure_remembers_the_fastest_guarded_backend_and_auto_prefers_it_to_the_flags(encoder, monkeypatch, caplog, tmp_path):
    monkeypatch.setattr(backends, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))  # flags say bf16
    monkeypatch.setattr(backends, "onnx_available", lambda: False)
    speeds = {"torch": 30.0, "bf16": 10.0}  # ... but this machine measures torch faster
    monkeypatch.setattr(backends, "_images_per_s", lambda backend, pixels: speeds[backend.name])
    assert backends.remembered(encoder) is None and encoder.use_backend("auto") == "bf16"
    with caplog.at_level(logging.INFO, logger="fastslow_desktop.models.backends"):
        assert encoder.use_backend("measure") == "torch"
    assert "bf16 10.0" in caplog.text and "remembering torch" in caplog.text
    saved = json.loads((cache_dir() / backends.CHOICE_FILE).read_text())
    assert [entry["backend"] for entry in saved.values()] == ["torch"]
    assert backends.remembered(encoder) == "torch" and encoder.use_backend("auto") == "torch"
    other = load_bundle(make_tiny_bundle(tmp_path / "other", seed=1), device="cpu").fast
    assert backends.remembered(other) is None  # keyed by the weights: another model measures afresh
    (cache_dir() / backends.CHOICE_FILE).write_text("{not json")
    assert encoder.use_backend("auto") == "bf16"  # an unreadable file: back to the flags


# -- the guard ------------------------------------------------------------------------------------
def test_a_backend_that_computes_something_else_is_not_used(encoder, monkeypatch, caplog):
    class Wrong(TorchBackend):
        def image(self, pixels):
            return -super().image(pixels)  # same norms, opposite directions

    monkeypatch.setattr(backends, "build_backend", lambda name, enc: Wrong(enc.model, enc.device, name="bf16"))
    with caplog.at_level(logging.WARNING, logger="fastslow_desktop.models.backends"):
        chosen = select_backend(encoder, "bf16")
    assert chosen.name == "torch" and type(chosen) is TorchBackend
    assert "cosine" in caplog.text and "bf16 not used" in caplog.text


def test_bf16_meets_the_guard_on_the_tiny_model(encoder):
    pixels = _pixels(encoder)
    reference, ref_text = encoder.encode_image_tensors(pixels), encoder.encode_texts(TEXTS)
    assert encoder.use_backend("bf16") == "bf16"
    assert _min_cos(encoder.encode_image_tensors(pixels), reference) >= 0.99
    assert _min_cos(encoder.encode_texts(TEXTS), ref_text) >= 0.99


def test_onnx_without_onnxruntime_falls_back_to_torch(encoder, monkeypatch, caplog):
    monkeypatch.setattr(backends, "onnx_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="fastslow_desktop.models.backends"):
        assert encoder.use_backend("onnx") == "torch"
    assert "onnxruntime is not installed" in caplog.text


# -- ONNX Runtime ---------------------------------------------------------------------------------
@needs_onnx
def test_onnx_matches_torch_and_is_cached_in_the_user_cache(encoder, tiny_bundle):
    pixels = _pixels(encoder)
    reference, ref_text = encoder.encode_image_tensors(pixels), encoder.encode_texts(TEXTS)
    assert encoder.use_backend("onnx") == "onnx"
    assert _min_cos(encoder.encode_image_tensors(pixels), reference) >= 0.999
    assert _min_cos(encoder.encode_texts(TEXTS), ref_text) >= 0.999
    assert not encoder.model.training  # the export must leave the live model in eval mode
    exports = list((cache_dir() / "onnx").glob("*/image.onnx"))
    assert len(exports) == 1 and not list(tiny_bundle.rglob("*.onnx"))
    assert encoder.use_backend("onnx") == "onnx"  # a second load reads the cache instead of exporting
    assert list((cache_dir() / "onnx").glob("*/image.onnx")) == exports


@needs_onnx
def test_int8_quantizes_the_image_tower_once_and_stays_within_its_guard(encoder, caplog):
    pixels = _pixels(encoder)
    reference, ref_text = encoder.encode_image_tensors(pixels), encoder.encode_texts(TEXTS)
    with caplog.at_level(logging.WARNING):
        assert encoder.use_backend("int8") == "int8"
    assert "pre-processing" not in caplog.text  # the quantizer's advice is not the user's business
    (quantized,) = (cache_dir() / "onnx").glob("*/image-int8.onnx")
    import onnx

    def ops(path) -> list[str]:
        return [node.op_type for node in onnx.load(str(path)).graph.node]

    # the weight products are 8-bit; the two attention products (activations by activations) stay fp32
    assert ops(quantized).count("MatMulInteger") >= 4 and ops(quantized).count("MatMul") == 2
    assert ops(quantized.with_name("image.onnx")).count("MatMulInteger") == 0
    images = encoder.encode_image_tensors(pixels)
    assert 0.99 <= _min_cos(images, reference) and not np.allclose(images, reference, atol=1e-6)
    assert _min_cos(encoder.encode_texts(TEXTS), ref_text) >= 0.999  # the text tower stays fp32
    mtime = quantized.stat().st_mtime_ns
    assert encoder.use_backend("int8") == "int8" and quantized.stat().st_mtime_ns == mtime  # cached


@needs_onnx
def test_int8_below_its_cosine_guard_is_not_used(encoder, monkeypatch, caplog):
    monkeypatch.setattr(backends, "COSINE_GUARD_INT8", 0.9999999)
    with caplog.at_level(logging.WARNING, logger="fastslow_desktop.models.backends"):
        assert encoder.use_backend("int8") == "torch"
    assert "backend int8 not used: its embeddings differ" in caplog.text


@needs_onnx
def test_a_truncated_int8_graph_is_removed_and_torch_used(encoder, caplog):
    assert encoder.use_backend("int8") == "int8"
    (quantized,) = (cache_dir() / "onnx").glob("*/image-int8.onnx")
    quantized.write_bytes(quantized.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING, logger="fastslow_desktop.models.backends"):
        assert encoder.use_backend("int8") == "torch"
    assert "is broken" in caplog.text and not quantized.parent.exists()
    assert encoder.use_backend("int8") == "int8"


@needs_onnx
@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete"])
def test_a_broken_onnx_cache_falls_back_to_torch_then_is_rebuilt(encoder, caplog, damage):
    assert encoder.use_backend("onnx") == "onnx"
    (image_file,) = (cache_dir() / "onnx").glob("*/image.onnx")
    size = image_file.stat().st_size
    if damage == "truncate":
        image_file.write_bytes(image_file.read_bytes()[: size // 2])
    elif damage == "garbage":
        image_file.write_bytes(b"\x07" * size)
    else:
        image_file.unlink()
    with caplog.at_level(logging.WARNING, logger="fastslow_desktop.models.backends"):
        assert encoder.use_backend("onnx") == "torch"
    assert "is broken" in caplog.text and "using torch fp32" in caplog.text
    assert encoder.encode_images([Image.new("RGB", (40, 30), "red")]).shape == (1, encoder.dim)
    assert not image_file.parent.exists()  # removed, so the next start exports afresh
    assert encoder.use_backend("onnx") == "onnx"


@needs_onnx
def test_a_model_the_exporter_cannot_trace_runs_on_torch(encoder, monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise RuntimeError("Exporting the operator 'aten::something' is not supported")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    with caplog.at_level(logging.WARNING, logger="fastslow_desktop.models.backends"):
        assert encoder.use_backend("onnx") == "torch"
    assert "the ONNX export failed" in caplog.text and "aten::something" in caplog.text
    assert not list((cache_dir() / "onnx").glob("*/*.onnx"))  # nothing half-written left behind


@needs_onnx
def test_an_unwritable_cache_folder_leaves_the_model_on_torch(encoder, monkeypatch, tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("FASTSLOW_CACHE", str(blocker))
    with caplog.at_level(logging.WARNING, logger="fastslow_desktop.models.backends"):
        assert encoder.use_backend("onnx") == "torch"
    assert "the ONNX export failed" in caplog.text
    assert encoder.encode_texts(["a photo"]).shape == (1, encoder.dim)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_fp16_on_a_real_gpu_meets_the_guard(tiny_bundle):
    encoder = load_bundle(tiny_bundle, device="cuda").fast
    assert encoder.use_backend("torch") == "torch"
    pixels = _pixels(encoder)
    reference = encoder.encode_image_tensors(pixels)
    assert encoder.use_backend("auto") == "fp16"
    assert _min_cos(encoder.encode_image_tensors(pixels), reference) >= 0.999


@needs_onnx
def test_index_with_backend_onnx_end_to_end(tmp_path, tiny_bundle, monkeypatch, capsys):
    from fastslow_desktop.models import onnx_backend

    rows = []
    original = onnx_backend.OnnxBackend.image
    monkeypatch.setattr(onnx_backend.OnnxBackend, "image",
                        lambda self, pixels: rows.append(len(pixels)) or original(self, pixels))
    photos = tmp_path / "photos"
    photos.mkdir()
    for n in range(5):
        Image.new("RGB", (48, 40), (n * 50, 120, 220 - n * 40)).save(photos / f"p{n}.jpg")
    library = tmp_path / "lib"
    args = ["--backend", "onnx", "--library", str(library), "--models", str(tiny_bundle)]
    assert main([*args, "index", str(photos), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["indexed"], report["failed"]) == (5, 0)
    # the guard's probe, the bundle's load check (one image), then the five photos: all through ONNX
    assert rows == [backends.PROBE_IMAGES, 1, 5]
    assert main([*args, "search", "a red circle", "--no-rerank", "--json"]) == 0
    assert str(photos) in capsys.readouterr().out


# -- the benchmark's guards -----------------------------------------------------------------------
def test_benchmark_marks_a_backend_outside_its_guards_as_not_met():
    from benchmarks.backends import recall_at_1, results_of

    images = np.eye(3, dtype=np.float32)
    assert recall_at_1(images, images[[2, 0]], [np.array([2]), np.array([1])]) == 50.0
    fp32 = {"images_per_s": 10.0, "cosine_min": 1.0, "guard_accepts": True, "R@1": 80.0}
    answer = {"label": "m", "n_images": 3, "n_texts": 2, "unavailable": {"fp16": "fp16 needs a CUDA GPU"},
              "backends": {"torch": fp32,
                           "onnx": {"images_per_s": 15.0, "cosine_min": 0.99995, "guard_accepts": True, "R@1": 80.4},
                           "bf16": {"images_per_s": 30.0, "cosine_min": 0.9995, "guard_accepts": True, "R@1": 79.0}}}
    rows = {r.name: r for r in results_of(answer)}
    onnx, bf16 = rows["encoder_speedup_vs_torch_fp32[onnx]@m"], rows["encoder_speedup_vs_torch_fp32[bf16]@m"]
    assert (onnx.ratio, onnx.met) == (1.5, True)
    assert (bf16.ratio, bf16.met) == (3.0, False)  # R@1 1 point below fp32's
    assert rows["synthscenes_test_R@1[bf16]"].met is False and rows["encoder_cosine_min[bf16]@m"].met is True
    assert rows["encoder_speedup_vs_torch_fp32[fp16]@m"].value is None


def test_measure_does_not_time_emulated_bf16(encoder, monkeypatch):
    monkeypatch.setattr(backends, "cpu_flags", lambda: frozenset({"avx2"}))
    monkeypatch.setattr(backends, "onnx_available", lambda: False)
    timed = []
    monkeypatch.setattr(backends, "_images_per_s", lambda backend, pixels: timed.append(backend.name) or 1.0)
    assert encoder.use_backend("measure") == "torch"
    assert timed == ["torch"] * backends.MEASURE_ROUNDS  # neither bf16 nor onnx was built or timed
