"""Drives Switchboard's compatible endpoints with the official SDKs, as their users do, and prints what the SDK
gave back as JSON: the text pieces with the time each arrived, the answer's fields, or the exception's class.

    sdk_client.py BASE_URL API_KEY SCENARIO [MODEL]
"""
import json
import os
import sys
import time

base, key, scenario = sys.argv[1], sys.argv[2], sys.argv[3]
model = sys.argv[4] if len(sys.argv) > 4 else "auto"
QUESTION = os.environ.get("SDK_QUESTION", "list the people")
started = time.monotonic()


def now():
    return round((time.monotonic() - started) * 1000)


def failure(error):
    body = getattr(error, "body", None)
    return {"exception": type(error).__name__, "status": getattr(error, "status_code", None), "body": body,
            "message": str(error)}


WEATHER = {"name": "get_weather", "description": "The weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def openai_client():
    import openai
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=30)


def anthropic_client():
    import anthropic
    return anthropic.Anthropic(base_url=base, api_key=key, max_retries=0, timeout=30)


def run():
    out = {}
    if scenario == "openai_stream":
        pieces = []
        final = None
        stream = openai_client().chat.completions.create(
            model=model, messages=[{"role": "user", "content": QUESTION}], stream=True,
            stream_options={"include_usage": True})
        for chunk in stream:
            out["model"] = chunk.model
            if chunk.usage is not None:
                out["usage"] = chunk.usage.model_dump()
            for choice in chunk.choices:
                if choice.delta.content:
                    pieces.append({"text": choice.delta.content, "ms": now()})
                if choice.finish_reason:
                    final = choice.finish_reason
        out.update(pieces=pieces, finish_reason=final)
    elif scenario == "openai_plain":
        answer = openai_client().chat.completions.create(model=model, messages=[
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}])
        out = {"model": answer.model, "text": answer.choices[0].message.content, "finish_reason": answer.choices[0].finish_reason,
               "usage": answer.usage.model_dump(), "object": answer.object}
    elif scenario == "openai_tools":
        client = openai_client()
        messages = [{"role": "user", "content": "what is the weather in Paris?"}]
        stream = client.chat.completions.create(model=model, messages=messages, tools=[{"type": "function", "function": WEATHER}],
                                                stream=True)
        calls = {}
        finish = None
        for chunk in stream:
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or []:
                    entry = calls.setdefault(call.index, {"id": None, "name": None, "arguments": ""})
                    if call.id:
                        entry["id"] = call.id
                    if call.function and call.function.name:
                        entry["name"] = call.function.name
                    if call.function and call.function.arguments:
                        entry["arguments"] += call.function.arguments
                if choice.finish_reason:
                    finish = choice.finish_reason
        out["calls"] = [calls[index] for index in sorted(calls)]
        out["first_finish_reason"] = finish
        call = out["calls"][0]
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}]})
        messages.append({"role": "tool", "tool_call_id": call["id"], "content": "18 degrees and sunny"})
        answer = client.chat.completions.create(model=model, messages=messages, tools=[{"type": "function", "function": WEATHER}])
        out["text"] = answer.choices[0].message.content
        out["finish_reason"] = answer.choices[0].finish_reason
    elif scenario == "openai_error":
        try:
            openai_client().chat.completions.create(model=model, messages=[{"role": "user", "content": QUESTION}])
            out = {"exception": None}
        except Exception as error:  # noqa: BLE001 - the class is what the test checks
            out = failure(error)
    elif scenario == "openai_stream_error":
        pieces = []
        try:
            stream = openai_client().chat.completions.create(model=model, messages=[{"role": "user", "content": QUESTION}],
                                                             stream=True)
            for chunk in stream:
                for choice in chunk.choices:
                    if choice.delta.content:
                        pieces.append(choice.delta.content)
            out = {"exception": None}
        except Exception as error:  # noqa: BLE001
            out = failure(error)
        out["pieces"] = pieces
    elif scenario == "openai_hangup":
        stream = openai_client().chat.completions.create(model=model, messages=[{"role": "user", "content": QUESTION}],
                                                         stream=True)
        for chunk in stream:
            if any(choice.delta.content for choice in chunk.choices):
                out["first_text_ms"] = now()
                break
        stream.close()
        out["closed_ms"] = now()
        time.sleep(1.5)
    elif scenario == "openai_models":
        out["ids"] = [entry.id for entry in openai_client().models.list()]
    elif scenario == "anthropic_stream":
        pieces = []
        with anthropic_client().messages.stream(model=model, max_tokens=512,
                                                messages=[{"role": "user", "content": QUESTION}]) as stream:
            for text in stream.text_stream:
                pieces.append({"text": text, "ms": now()})
            message = stream.get_final_message()
        out = {"pieces": pieces, "model": message.model, "stop_reason": message.stop_reason, "usage": message.usage.model_dump(),
               "text": "".join(block.text for block in message.content if block.type == "text")}
    elif scenario == "anthropic_plain":
        message = anthropic_client().messages.create(model=model, max_tokens=512, system="Be brief.",
                                                     messages=[{"role": "user", "content": QUESTION}])
        out = {"model": message.model, "stop_reason": message.stop_reason, "usage": message.usage.model_dump(),
               "text": "".join(block.text for block in message.content if block.type == "text"), "type": message.type}
    elif scenario == "anthropic_tools":
        client = anthropic_client()
        tool = {"name": WEATHER["name"], "description": WEATHER["description"], "input_schema": WEATHER["parameters"]}
        messages = [{"role": "user", "content": "what is the weather in Paris?"}]
        with client.messages.stream(model=model, max_tokens=512, messages=messages, tools=[tool]) as stream:
            first = stream.get_final_message()
        uses = [block for block in first.content if block.type == "tool_use"]
        out["first_stop_reason"] = first.stop_reason
        out["calls"] = [{"id": use.id, "name": use.name, "input": use.input} for use in uses]
        messages.append({"role": "assistant", "content": [block.model_dump() for block in first.content]})
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id,
                                                      "content": "18 degrees and sunny"}]})
        answer = client.messages.create(model=model, max_tokens=512, messages=messages, tools=[tool])
        out["text"] = "".join(block.text for block in answer.content if block.type == "text")
        out["stop_reason"] = answer.stop_reason
    elif scenario == "anthropic_error":
        try:
            anthropic_client().messages.create(model=model, max_tokens=64, messages=[{"role": "user", "content": QUESTION}])
            out = {"exception": None}
        except Exception as error:  # noqa: BLE001
            out = failure(error)
    elif scenario == "anthropic_stream_error":
        pieces = []
        try:
            with anthropic_client().messages.stream(model=model, max_tokens=64,
                                                    messages=[{"role": "user", "content": QUESTION}]) as stream:
                for text in stream.text_stream:
                    pieces.append(text)
            out = {"exception": None}
        except Exception as error:  # noqa: BLE001
            out = failure(error)
        out["pieces"] = pieces
    elif scenario == "langchain_stream":
        from langchain_openai import ChatOpenAI
        chat = ChatOpenAI(model=model, base_url=base + "/v1", api_key=key, max_retries=0, streaming=True)
        pieces = [{"text": piece.content, "ms": now()} for piece in chat.stream(QUESTION) if piece.content]
        out["pieces"] = pieces
    elif scenario == "litellm_stream":
        import litellm
        response = litellm.completion(model="openai/" + model, api_base=base + "/v1", api_key=key, stream=True, num_retries=0,
                                      messages=[{"role": "user", "content": QUESTION}])
        out["pieces"] = [{"text": chunk.choices[0].delta.content, "ms": now()} for chunk in response
                         if chunk.choices and chunk.choices[0].delta.content]
    else:
        raise SystemExit("unknown scenario " + scenario)
    return out


print(json.dumps(run()))
