"""Drives thinkbank's OpenAI-compatible `/v1/embeddings` with the official `openai` package.

Usage: python openai_embeddings.py <base_url> <remote_model>   (base_url e.g. http://127.0.0.1:8080/v1)
Prints one JSON object with what the SDK saw; the Rust test asserts on it.
"""

import json
import os
import sys

import openai


def main() -> None:
    client = openai.OpenAI(base_url=sys.argv[1], api_key=os.environ["OPENAI_API_KEY"], max_retries=0)
    remote = sys.argv[2]
    seen = {}
    # The SDK asks for base64 by default and decodes it.
    local = client.embeddings.create(model="all-minilm-l6-v2", input=["hello world", "second text"])
    seen["local"] = {
        "model": local.model,
        "count": len(local.data),
        "dims": len(local.data[0].embedding),
        "prompt_tokens": local.usage.prompt_tokens,
    }
    floats = client.embeddings.create(model=remote, input="ocean tides", encoding_format="float")
    seen["remote"] = {"model": floats.model, "dims": len(floats.data[0].embedding),
                      "first": floats.data[0].embedding[:4]}
    long_text = "word " * 400
    cut = client.embeddings.create(model="all-minilm-l6-v2", input=[long_text, "short"])
    seen["truncated"] = [(d.model_extra or {}).get("truncated") for d in cut.data]
    try:
        client.embeddings.create(model="all-minilm-l6-v2", input=[long_text], extra_body={"strict": True})
        seen["strict_status"] = 200
    except openai.BadRequestError as error:
        seen["strict_status"] = error.status_code
    try:
        client.embeddings.create(model="no-such-model", input=["x"])
        seen["unknown_status"] = 200
    except openai.BadRequestError as error:
        seen["unknown_status"] = error.status_code
        seen["unknown_message"] = str(error)
    try:
        client.embeddings.create(model="all-minilm-l6-v2", input=[])
        seen["empty_status"] = 200
    except openai.BadRequestError as error:
        seen["empty_status"] = error.status_code
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
