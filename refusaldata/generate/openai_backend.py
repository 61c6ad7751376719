"""The openai backend: any OpenAI-compatible `/chat/completions` endpoint (vllm serve, hosted APIs).

Requests run concurrently up to `--concurrency`; 429, 5xx and connection failures are
retried with exponential backoff (honouring Retry-After). The API key comes from the
environment variable named by `--api-key-env` and appears in no message or log; a
`user:password@` in `--base-url` is sent as basic auth but stored, hashed into the run id
and printed without it (so a run's id does not change with its password). The
endpoint applies its own chat template, so the run has no template hash; a prompt the
endpoint rejects as longer than its context is recorded as skipped, like the local backends do.
"""

from __future__ import annotations

import asyncio
import os
import random

from refusaldata.errors import BackendError, InputError, excerpt, without_userinfo
from refusaldata.generate import SKIPPED, Completion, GenerateOptions, Prompt, conversation

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
ATTEMPTS = 6
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
CONTEXT_MARKERS = ("context length", "context_length", "maximum context", "too many tokens", "too long")


def backoff_seconds(attempt: int, retry_after: str | None) -> float:
    """Retry-After when the server gives seconds, else 0.5 s doubling per attempt (capped), jittered."""
    if retry_after:
        try:
            return min(60.0, max(0.0, float(retry_after)))
        except ValueError:
            pass
    return min(30.0, 0.5 * 2 ** attempt) * (1 + random.random() / 4)


class OpenAIBackend:
    name = "openai"

    def __init__(self, options: GenerateOptions):
        if options.adapter:
            raise InputError("--adapter is for the vllm and transformers backends; an endpoint serves its "
                             "adapters under their own model names (pass that name to --model)")
        if options.dtype != "auto":
            raise InputError("--dtype is for the vllm and transformers backends; the endpoint picks its own")
        self.options = options
        self.api_key = os.environ.get(options.api_key_env)
        if not self.api_key and options.api_key_env != DEFAULT_KEY_ENV:
            raise InputError(f"--api-key-env names {options.api_key_env}, which is not set")

    def identity(self) -> dict:
        return {"label": self.options.model, "model": self.options.model,
                "base_url": without_userinfo(self.options.base_url.rstrip("/"))}

    def too_long(self, prompts: list[Prompt]) -> dict[str, int]:
        return {}

    def open(self) -> OpenAIEngine:
        return OpenAIEngine(self.options, self.api_key)


class OpenAIEngine:
    def __init__(self, options: GenerateOptions, api_key: str | None):
        self.options = options
        self.endpoint = options.base_url.rstrip("/") + "/chat/completions"
        self.url = without_userinfo(self.endpoint)  # in messages
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def generate(self, prompts: list[Prompt]) -> list[Completion]:
        return asyncio.run(self._generate(prompts))

    def close(self) -> None:
        """Nothing to release: each chunk opens and closes its own connection pool."""

    async def _generate(self, prompts: list[Prompt]) -> list[Completion]:
        import httpx

        limit = asyncio.Semaphore(self.options.concurrency)
        timeout = httpx.Timeout(600.0, connect=10.0)
        async with httpx.AsyncClient(headers=self.headers, timeout=timeout) as client:
            answers = await asyncio.gather(*(self._answer(client, limit, prompt) for prompt in prompts))
        return [completion for answer in answers for completion in answer]

    def _body(self, prompt: Prompt) -> dict:
        options = self.options
        return {"model": options.model, "messages": conversation(options.system_prompt, options.few_shot, prompt.text),
                "n": options.n, "temperature": options.temperature, "top_p": options.top_p,
                "max_tokens": options.max_tokens, "seed": options.seed}

    async def _answer(self, client, limit: asyncio.Semaphore, prompt: Prompt) -> list[Completion]:
        import httpx

        body = self._body(prompt)
        failure = ""
        for attempt in range(ATTEMPTS):
            retry_after = None
            async with limit:
                try:
                    reply = await client.post(self.endpoint, json=body)
                except httpx.TransportError as exc:
                    failure = f"{type(exc).__name__}"
                else:
                    if reply.status_code == 200:
                        return self._completions(prompt, reply.json())
                    message = reply.text
                    if reply.status_code == 400 and any(m in message.lower() for m in CONTEXT_MARKERS):
                        return [Completion(prompt.prompt_id, index, None, None, 0, SKIPPED)
                                for index in range(self.options.n)]
                    if reply.status_code not in RETRY_STATUS:
                        raise BackendError(f"{self.url} answered HTTP {reply.status_code}: {excerpt(message)}")
                    failure = f"HTTP {reply.status_code}"
                    retry_after = reply.headers.get("retry-after")
            if attempt + 1 < ATTEMPTS:
                await asyncio.sleep(backoff_seconds(attempt, retry_after))
        raise BackendError(f"{self.url} failed {ATTEMPTS} times (last: {failure}); finished chunks are stored, "
                           "rerun to resume")

    def _completions(self, prompt: Prompt, payload: dict) -> list[Completion]:
        usage = payload.get("usage") or {}
        choices = sorted(payload.get("choices") or [], key=lambda choice: choice.get("index", 0))
        if len(choices) != self.options.n:
            raise BackendError(f"{self.url} returned {len(choices)} choices for n={self.options.n}")
        # usage counts all choices together; per-sample counts are known only for n=1.
        output_tokens = usage.get("completion_tokens") if self.options.n == 1 else None
        return [
            Completion(prompt.prompt_id, index, (choice.get("message") or {}).get("content"),
                       usage.get("prompt_tokens"), output_tokens, choice.get("finish_reason"))
            for index, choice in enumerate(choices)
        ]
