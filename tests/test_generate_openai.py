"""The openai backend: retries and key handling against a small local HTTP endpoint, and a real
`vllm serve` of the embedded model that the test starts on 127.0.0.1 and stops."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from refusaldata.generate import GenerateOptions, generate
from refusaldata.keys import prompt_id
from test_generate import PROMPTS, add_prompts, responses, run_id_of

SECRET = "sk-test-never-printed-4242"
PASSWORD = "pa55-never-stored-9876"  # of the user `reader`, given in --base-url as basic auth
BASIC = "Basic " + base64.b64encode(f"reader:{PASSWORD}".encode()).decode()


class FlakyEndpoint(BaseHTTPRequestHandler):
    """Answers every prompt's first request with 503, then with a canned completion; 401 without the key."""

    seen: dict[str, int] = {}
    bodies: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FlakyEndpoint.bodies.append(body)
        text = body["messages"][-1]["content"]
        if self.headers.get("Authorization") not in (f"Bearer {SECRET}", BASIC):
            return self._reply(401, {"error": {"message": "invalid api key"}})
        if "too long" in text:
            return self._reply(400, {"error": {"message": "This model's maximum context length is 8192 tokens"}})
        FlakyEndpoint.seen[text] = FlakyEndpoint.seen.get(text, 0) + 1
        if FlakyEndpoint.seen[text] == 1:
            return self._reply(503, {"error": {"message": "busy"}}, {"Retry-After": "0"})
        return self._reply(200, {
            "choices": [{"index": 0, "message": {"role": "assistant", "content": f"echo: {text}"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3},
        })

    def _reply(self, status, payload, headers=None):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky_endpoint():
    FlakyEndpoint.seen, FlakyEndpoint.bodies = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_retries_skips_and_keeps_the_key_secret(cli, store, flaky_endpoint, monkeypatch):
    add_prompts(store, PROMPTS[:3] + ["please answer this too long prompt"])
    monkeypatch.setenv("MY_ENDPOINT_KEY", SECRET)
    args = ["generate", "--backend", "openai", "--model", "echo-model", "--prompts", "tiny",
            "--base-url", flaky_endpoint, "--api-key-env", "MY_ENDPOINT_KEY", "--concurrency", "2",
            "--max-tokens", "5", "--system-prompt", "Be brief."]
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    run_id = run_id_of(result)
    rows = {r["prompt_id"]: r for r in responses(store, run_id)}
    assert len(rows) == 4
    for text in PROMPTS[:3]:
        row = rows[prompt_id(text)]
        assert (row["response"], row["n_prompt_tokens"], row["n_output_tokens"], row["finish_reason"]) == (
            f"echo: {text}", 11, 3, "stop")
        assert FlakyEndpoint.seen[text] == 2  # one 503, one retry
    skipped = rows[prompt_id("please answer this too long prompt")]
    assert skipped["finish_reason"] == "skipped" and skipped["response"] is None
    body = FlakyEndpoint.bodies[0]
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert (body["model"], body["max_tokens"], body["temperature"], body["top_p"], body["n"], body["seed"]) == (
        "echo-model", 5, 0.0, 1.0, 1, 0)
    run = store.read("runs").to_pylist()[0]
    assert run["backend"] == "openai" and run["model"] == "echo-model" and run["chat_template_sha"] is None
    assert json.loads(run["config"])["base_url"] == flaky_endpoint
    assert SECRET not in json.dumps(run, default=str)

    # A wrong key is a one-line error that does not echo the key; nothing new is stored.
    add_prompts(store, ["one more prompt"])
    monkeypatch.setenv("MY_ENDPOINT_KEY", SECRET + "-wrong")
    failed = cli(*args)
    assert failed.exit_code == 1 and "HTTP 401" in failed.stderr and failed.stderr.count("\n") == 1
    assert SECRET not in failed.stderr
    assert store.count("responses") == 4

    monkeypatch.delenv("MY_ENDPOINT_KEY")
    unset = cli(*args)
    assert unset.exit_code == 1 and "MY_ENDPOINT_KEY, which is not set" in unset.stderr


def test_a_password_in_the_base_url_is_sent_but_never_printed_stored_or_hashed(cli, store, flaky_endpoint,
                                                                              monkeypatch):
    add_prompts(store, PROMPTS[:2])
    monkeypatch.setenv("MY_ENDPOINT_KEY", SECRET)
    plain = ["generate", "--backend", "openai", "--model", "echo-model", "--prompts", "tiny", "--max-tokens", "5",
             "--base-url", flaky_endpoint]
    assert cli(*plain, "--api-key-env", "MY_ENDPOINT_KEY").exit_code == 0
    [run] = store.read("runs").to_pylist()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with_password = flaky_endpoint.replace("http://", f"http://reader:{PASSWORD}@")
    add_prompts(store, ["one more prompt"])
    resumed = cli(*plain[:-1], with_password)
    assert resumed.exit_code == 0, resumed.stderr
    # the same run (the password is not part of its config), its one new prompt answered through basic auth
    assert [r["run_id"] for r in store.read("runs").to_pylist()] == [run["run_id"]]
    assert store.count("responses") == 3 and json.loads(run["config"])["base_url"] == flaky_endpoint

    add_prompts(store, ["a last prompt"])
    failed = cli(*plain[:-1], with_password.replace(PASSWORD, PASSWORD + "-wrong"))
    assert failed.exit_code == 1 and "HTTP 401" in failed.stderr and failed.stderr.count("\n") == 1
    for output in (resumed, failed):
        assert PASSWORD not in output.stdout + output.stderr
    stored = [path.read_bytes() for path in store.root.rglob("*") if path.is_file()]
    assert stored and not any(PASSWORD.encode() in data for data in stored)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def vllm_server(embedded_model, tmp_path):
    """`vllm serve` of the embedded model (fp32, eager) on a free loopback port; stopped afterwards."""
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vllm is not installed")
    from refusaldata.models import cache_dir

    port = free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CACHE_ROOT": str(cache_dir() / "vllm"),
           "TORCHINDUCTOR_CACHE_DIR": str(cache_dir() / "torchinductor"), "VLLM_LOGGING_LEVEL": "WARNING"}
    log = open(tmp_path / "vllm-serve.log", "w")  # noqa: SIM115 -- the server writes to it until it is stopped
    server = subprocess.Popen(
        # The module form: the `vllm` script looks up the package metadata of "vllm", which
        # the CPU build (distributed as vllm-cpu) lacks.
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", embedded_model, "--host", "127.0.0.1",
         "--port", str(port), "--served-model-name", "smollm2-135m-instruct", "--dtype", "float32",
         "--enforce-eager", "--generation-config", "vllm", "--max-model-len", "8192"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 600
        while True:
            if server.poll() is not None:
                pytest.fail(f"vllm serve exited with {server.returncode}: "
                            f"{(tmp_path / 'vllm-serve.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("vllm serve did not come up within 600 s")
            time.sleep(2)
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.mark.slow
def test_openai_against_vllm_serve_matches_transformers(cli, store, vllm_server):
    long_prompt = "Tell me everything about " + "locks and keys " * 3000
    add_prompts(store, PROMPTS[:3] + [long_prompt])
    result = cli("generate", "--backend", "openai", "--model", "smollm2-135m-instruct", "--prompts", "tiny",
                 "--base-url", vllm_server, "--max-tokens", "12", "--concurrency", "2")
    assert result.exit_code == 0, result.stderr
    assert "4 prompts answered (4 rows, 1 skipped as too long)" in result.stdout
    served = {r["prompt_id"]: r for r in responses(store, run_id_of(result))}
    again = cli("generate", "--backend", "openai", "--model", "smollm2-135m-instruct", "--prompts", "tiny",
                "--base-url", vllm_server, "--max-tokens", "12", "--concurrency", "2")
    assert again.exit_code == 0 and "all 4 prompts already answered" in again.stdout

    reference = generate(store, GenerateOptions(model="smollm2-135m-instruct", datasets=("tiny",),
                                                backend="transformers", max_tokens=12))
    local = {r["prompt_id"]: r for r in responses(store, reference.run_id)}
    assert served.keys() == local.keys()
    for key, row in local.items():
        fields = ("response", "n_output_tokens", "finish_reason") if key != prompt_id(long_prompt) else (
            "response", "finish_reason")
        assert tuple(served[key][f] for f in fields) == tuple(row[f] for f in fields)
        if row["finish_reason"] != "skipped":
            assert served[key]["n_prompt_tokens"] == row["n_prompt_tokens"]
