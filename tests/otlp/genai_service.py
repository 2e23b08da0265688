"""A service instrumented the way teams do it: the OpenTelemetry SDK, the OTLP/HTTP exporter, and
the official OpenAI instrumentation (opentelemetry-instrumentation-openai-v2) over the real
OpenAI client. Only the HTTP layer under the client is stubbed (an httpx2 MockTransport: httpx2 is
the HTTP library the installed openai uses, which respx does not patch): no model is called.

    python genai_service.py ENDPOINT CALLS

sends CALLS chat completions (one trace each, plus one tool-using agent trace) and exports their
spans to ENDPOINT (`http://host:4318/v1/traces`), then prints the usage it was given as JSON so
the test can compute the expected costs. Runs in its own process: instrumentation patches the
OpenAI client globally.
"""

from __future__ import annotations

import json
import os
import sys

# Current conventions (gen_ai.provider.name, gen_ai.input/output.messages) with content captured.
os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
os.environ.setdefault("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")

import httpx2
from openai import OpenAI
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

MODELS = ["gpt-4o-mini", "gpt-4o"]


def completion(i: int, model: str, prompt_tokens: int, completion_tokens: int) -> dict[str, object]:
    return {
        "id": f"chatcmpl-{i}",
        "object": "chat.completion",
        "created": 1_795_000_000,
        "model": f"{model}-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": f"answer {i}"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": 0},
    }


def main(endpoint: str, calls: int) -> None:
    resource = Resource.create(
        {"service.name": "support-bot", "deployment.environment.name": "staging", "tokentrail.tenant": "acme"}
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    tracer = provider.get_tracer("support-bot")
    replies: list[httpx2.Response] = []
    client = OpenAI(
        api_key="sk-test",
        base_url="https://api.openai.test/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(lambda request: replies.pop())),
    )
    sent = []
    for i in range(calls):
        model = MODELS[i % len(MODELS)]
        usage = (400 + 17 * i, 30 + i)
        replies.append(httpx2.Response(200, json=completion(i, model, *usage)))
        with tracer.start_as_current_span("POST /support"):  # an HTTP server span: not GenAI, skipped
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": f"question {i}"}])
        sent.append({"model": model, "input_tokens": usage[0], "output_tokens": usage[1]})
    provider.force_flush()
    provider.shutdown()
    print(json.dumps(sent))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
