"""A loopback model hub for tests: the API and resolve/ routes huggingface_hub calls, with faults.

Serves repositories in the hub's layout (GET /api/models/ORG/NAME[/revision/REV] with siblings,
HEAD/GET /ORG/NAME/resolve/REV/FILE with ETag, X-Repo-Commit, X-Linked-Size and Range), counts the
body bytes it sends per file, and can inject faults: HTTP 500, a stall mid-body, a truncated body,
and a slow body (so a test can cancel or kill a client mid-file). Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

CHUNK = 16 * 1024
_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_API = re.compile(r"^/api/models/([^/]+/[^/]+?)(?:/revision/([^/]+))?$")


@dataclass
class Fault:
    """What to do to GET requests of one file: '500', or 'stall' / 'truncate' at file offset `after`."""

    kind: str
    file: str | None = None  # None: every file
    after: int = 0
    times: int = 1  # how many requests it hits; -1 for all


@dataclass
class Repo:
    files: dict[str, bytes]
    commit: str = ""
    sha256: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        digest = hashlib.sha1()
        for name in sorted(self.files):
            self.sha256[name] = hashlib.sha256(self.files[name]).hexdigest()
            digest.update(name.encode() + self.sha256[name].encode())
        self.commit = digest.hexdigest()


class HubServer:
    """Start with .start(); .url is the HF_ENDPOINT; .sent counts body bytes per 'repo/file'."""

    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.faults: list[Fault] = []
        self.sent: Counter = Counter()
        self.bodies: list[list] = []  # [repo/file, start offset, bytes sent] per GET
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.delay_per_chunk = 0.0  # seconds: a slow link, so clients can be stopped mid-file
        self.release = threading.Event()  # ends stalls (set on stop)
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    def add_repo(self, repo_id: str, files: dict[str, bytes]) -> Repo:
        self.repos[repo_id] = Repo(dict(files))
        return self.repos[repo_id]

    def add_fault(self, kind: str, file: str | None = None, after: int = 0, times: int = 1) -> None:
        with self._lock:
            self.faults.append(Fault(kind, file, after, times))

    def take_fault(self, file: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times != 0 and (fault.file is None or fault.file == file):
                    fault.times -= 1 if fault.times > 0 else 0
                    return fault
        return None

    def count(self, body: list, n: int) -> None:
        with self._lock:
            self.sent[body[0]] += n
            body[2] += n

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.hub = self
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, name="test-hub", daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    """The hub's routes; `self.server.hub` is the HubServer whose repositories and faults it serves."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        self._route(body=True)

    def do_HEAD(self):
        self._route(body=False)

    def _route(self, body: bool) -> None:
        path = unquote(urlparse(self.path).path)
        self.server.hub.requests.append((self.command, path, self.headers.get("Range")))
        if m := _API.match(path):
            return self._api(m.group(1), m.group(2))
        if m := _RESOLVE.match(path):
            return self._resolve(m.group(1), m.group(2), m.group(3), body)
        self._error(404, "not found")

    def _error(self, code: int, text: str, headers: dict | None = None) -> None:
        data = json.dumps({"error": text}).encode()
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data if self.command != "HEAD" else b"")

    def _api(self, repo_id: str, revision: str | None) -> None:
        repo = self.server.hub.repos.get(repo_id)
        if repo is None or (revision not in (None, "main", repo.commit)):
            return self._error(404, "Repository not found", {"X-Error-Code": "RepoNotFound"})
        fault = self.server.hub.take_fault("api")
        if fault is not None and fault.kind == "500":
            return self._error(500, "Internal Server Error")
        siblings = [{"rfilename": n, "size": len(d), "blobId": repo.sha256[n][:40],
                     "lfs": {"sha256": repo.sha256[n], "size": len(d), "pointerSize": 134}}
                    for n, d in repo.files.items()]
        data = json.dumps({"id": repo_id, "modelId": repo_id, "sha": repo.commit, "private": False,
                           "siblings": siblings}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _resolve(self, repo_id: str, revision: str, name: str, body: bool) -> None:
        repo = self.server.hub.repos.get(repo_id)
        if repo is None or revision not in ("main", repo.commit):
            return self._error(404, "Repository not found", {"X-Error-Code": "RepoNotFound"})
        if name not in repo.files:
            return self._error(404, "Entry not found", {"X-Error-Code": "EntryNotFound"})
        data = repo.files[name]
        start = _range_start(self.headers.get("Range"))
        fault = self.server.hub.take_fault(name) if body else None
        if fault is not None and fault.kind == "500":
            return self._error(500, "Internal Server Error")
        self.send_response(206 if start else 200)
        self.send_header("ETag", f'"{repo.sha256[name]}"')
        self.send_header("X-Linked-Etag", f'"{repo.sha256[name]}"')
        self.send_header("X-Linked-Size", str(len(data)))
        self.send_header("X-Repo-Commit", repo.commit)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if body:
            self._send_body(f"{repo_id}/{name}", data[start:], start, fault)

    def _send_body(self, key: str, data: bytes, start: int, fault: Fault | None) -> None:
        # a fault's `after` is an offset in the file: a resumed request that starts there gets nothing
        limit = max(fault.after - start, 0) if fault is not None else len(data)
        body = [key, start, 0]
        self.server.hub.bodies.append(body)
        for pos in range(0, min(limit, len(data)), CHUNK):
            chunk = data[pos : min(pos + CHUNK, limit)]
            try:
                self.wfile.write(chunk)
                self.wfile.flush()
            except OSError:  # the client went away (cancel, kill -9)
                return
            self.server.hub.count(body, len(chunk))
            if self.server.hub.delay_per_chunk:
                time.sleep(self.server.hub.delay_per_chunk)
        if fault is not None and fault.kind == "stall":
            self.server.hub.release.wait(60)  # hold the connection open, sending nothing
        if fault is not None:
            self.close_connection = True  # a truncated body: the socket closes early


def _range_start(header: str | None) -> int:
    m = re.match(r"bytes=(\d+)-", header or "")
    return int(m.group(1)) if m else 0


# -- tiny upstream-format repositories and the pytest fixture ------------------------------------

TINY_REPOS = {"fast": "fastslow-test/tiny-clip", "slow": "fastslow-test/tiny-coca",
              "multilingual": "fastslow-test/tiny-siglip2", "fastvit": "fastslow-test/tiny-mobileclip"}
TINY_WORDS = ("a an the dog cat red blue photo of on beach my daughter "
              "un chien rouge ein hund plage ma fille sur la").split()


def open_clip_repo_files(model, model_cfg: dict, preprocess_cfg: dict, extra: dict | None = None) -> dict:
    """A model as its upstream hub repository holds it: open_clip_config.json + safetensors weights."""
    from safetensors.torch import save as save_bytes

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}
    return {"open_clip_config.json": json.dumps(config).encode(),
            "open_clip_model.safetensors": save_bytes(state), **(extra or {})}


def tiny_siglip2_files() -> dict[str, bytes]:
    """A SigLIP2-style model: timm ViT with MAP pooling, a non-causal text tower, and a tiny HF tokenizer."""
    import open_clip
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    words = ["<pad>", "</s>", "<unk>", *TINY_WORDS]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    special = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}
    cfg = {"embed_dim": 64, "init_logit_bias": -10, "custom_text": True,  # 64: timm test_vit's width
           "vision_cfg": {"image_size": 160, "timm_model_name": "test_vit", "timm_model_pretrained": False,
                          "timm_pool": "map", "timm_proj": "none"},
           "text_cfg": {"context_length": 16, "vocab_size": len(words), "hf_tokenizer_name": TINY_REPOS["multilingual"],
                        "tokenizer_kwargs": {"clean": "canonicalize"}, "width": 32, "heads": 2, "layers": 1,
                        "no_causal_mask": True, "proj_bias": True, "pool_type": "last",
                        "norm_kwargs": {"eps": 1e-6}, "act_kwargs": {"approximate": "tanh"}}}
    model = open_clip.model.CustomTextCLIP(**{k: v for k, v in cfg.items() if k != "custom_text"})
    preprocess = {"mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bicubic", "resize_mode": "squash"}
    tokenizer_files = {
        "tokenizer.json": tok.to_str().encode(),
        "tokenizer_config.json": json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 16,
                                             **special}).encode(),
        "special_tokens_map.json": json.dumps(special).encode(),
        "README.md": b"not fetched: FastSlow takes only what open_clip reads",
    }
    return open_clip_repo_files(model, cfg, preprocess, tokenizer_files)


def tiny_fastvit_files() -> dict[str, bytes]:
    """A MobileCLIP-style model: a timm FastViT image tower (fastvit_t8, the family's smallest member,
    3.3 M parameters) and a non-causal text tower, laid out as MobileCLIP2's open_clip repositories are."""
    import open_clip
    import torch

    from tests.test_hub import PREPROCESS

    torch.manual_seed(0)
    cfg = {"embed_dim": 32, "custom_text": True,
           "vision_cfg": {"image_size": 64, "timm_model_name": "fastvit_t8", "timm_model_pretrained": False,
                          "timm_pool": "avg", "timm_proj": "linear", "timm_drop": 0.0, "timm_drop_path": 0.0},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1,
                        "no_causal_mask": True}}
    model = open_clip.model.CustomTextCLIP(**{k: v for k, v in cfg.items() if k != "custom_text"})
    return open_clip_repo_files(model.eval(), cfg, PREPROCESS)


def tiny_repo_files() -> dict[str, dict[str, bytes]]:
    """A tiny open_clip ViT and a tiny CoCa, random weights, as {repo: {file: bytes}}."""
    import open_clip
    import torch

    from tests.test_hub import PREPROCESS, TINY_CLIP, TINY_COCA

    torch.manual_seed(0)
    clip = open_clip.model.CLIP(**TINY_CLIP)
    coca = open_clip.coca_model.CoCa(**{k: v for k, v in TINY_COCA.items() if k != "custom_text"})
    # CoCa() leaves text_projection as torch.empty (pretrained weights overwrite it): give it values.
    torch.nn.init.normal_(coca.text_decoder.text_projection, std=coca.text_decoder.width ** -0.5)
    return {TINY_REPOS["fast"]: open_clip_repo_files(clip, TINY_CLIP, PREPROCESS),
            TINY_REPOS["slow"]: open_clip_repo_files(coca, TINY_COCA, PREPROCESS),
            TINY_REPOS["multilingual"]: tiny_siglip2_files(), TINY_REPOS["fastvit"]: tiny_fastvit_files()}


def tiny_presets(names=("balanced", "fast", "multilingual", "accurate")) -> dict:
    """A FASTSLOW_PRESETS catalogue: the real preset names, pointing at the tiny repositories."""
    def part(repo: str) -> dict:
        return {"model": f"hf-hub:{repo}", "hub": repo, "download_bytes": 0}

    presets = {name: {"description": f"tiny {name}", "languages": ["en"], "fast": part(TINY_REPOS["fast"]),
                      "slow": part(TINY_REPOS["slow"]), "embedding_dim": 16,
                      "rerank": {"k": 5, "beta": 1.0, "normalization": "zscore"}} for name in names}
    presets["multilingual"].update(fast=part(TINY_REPOS["multilingual"]), embedding_dim=64, languages=["multi"])
    presets["fast"].update(fast=part(TINY_REPOS["fastvit"]), embedding_dim=32)  # MobileCLIP-style, as upstream
    return {"schema": 1, "default_for_new_library": "balanced", "presets": presets}


_FILES_CACHE: dict = {}


def hub_env(monkeypatch, tmp_path, server: HubServer) -> dict[str, str]:
    """Point huggingface_hub and FastSlow at the test hub; returns the variables for a subprocess."""
    import huggingface_hub.constants as hub_constants

    presets = tmp_path / "presets.json"
    presets.write_text(json.dumps(tiny_presets()))
    env = {"HF_ENDPOINT": server.url, "HF_HUB_CACHE": str(tmp_path / "hub"), "FASTSLOW_PRESETS": str(presets),
           "HF_HUB_DOWNLOAD_TIMEOUT": "2", "HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DISABLE_XET": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # conftest sets it to 1 for every other test
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", env["HF_HUB_CACHE"])
    monkeypatch.setattr(hub_constants, "HF_HUB_DOWNLOAD_TIMEOUT", 2)
    monkeypatch.setattr(hub_constants, "HF_HUB_ETAG_TIMEOUT", 2)
    # tiny files, so small pieces: a cancel or kill lands mid-file as it would in a 600 MB one
    monkeypatch.setattr(hub_constants, "DOWNLOAD_CHUNK_SIZE", CHUNK)
    return env


try:
    import pytest

    @pytest.fixture
    def test_hub(monkeypatch, tmp_path):
        """A running loopback hub serving the tiny repositories under the real preset names."""
        if not _FILES_CACHE:
            _FILES_CACHE.update(tiny_repo_files())
        server = HubServer()
        for repo, files in _FILES_CACHE.items():
            server.add_repo(repo, files)
        server.start()
        server.env = hub_env(monkeypatch, tmp_path, server)
        yield server
        server.stop()
except ImportError:  # used outside pytest (a subprocess): the fixture is not needed
    pass
