"""Drives thinkbank's OpenAI-compatible chat façade with the official `openai` package.

Usage: python openai_chat.py <base_url>   (e.g. http://127.0.0.1:8080/v1)
Prints one JSON object with what the SDK saw; the Rust test asserts on it.
"""

import json
import os
import sys

import openai


def main() -> None:
    client = openai.OpenAI(base_url=sys.argv[1], api_key=os.environ["OPENAI_API_KEY"], max_retries=0)
    question = "What causes ocean tides?"
    models = [m.id for m in client.models.list()]

    completion = client.chat.completions.create(
        model="thinkbank",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}],
    )
    extra = completion.model_extra or {}

    stream = client.chat.completions.create(
        model="thinkbank",
        messages=[{"role": "user", "content": question}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finish, citations, usage, chunks = [], None, None, None, 0
    for chunk in stream:
        chunks += 1
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
        if (chunk.model_extra or {}).get("thinkbank_citations") is not None:
            citations = chunk.model_extra["thinkbank_citations"]

    try:
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
        unknown_model = None
    except openai.NotFoundError as error:
        unknown_model = error.status_code

    print(json.dumps({
        "models": models,
        "content": completion.choices[0].message.content,
        "finish_reason": completion.choices[0].finish_reason,
        "usage": completion.usage.model_dump() if completion.usage else None,
        "citations": extra.get("thinkbank_citations"),
        "sources": extra.get("thinkbank_sources"),
        "stream_content": "".join(pieces),
        "stream_finish_reason": finish,
        "stream_citations": citations,
        "stream_usage": usage,
        "stream_chunks": chunks,
        "unknown_model_status": unknown_model,
    }))


if __name__ == "__main__":
    main()
