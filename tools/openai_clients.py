#!/usr/bin/env python3
"""openai_clients.py — the openai Python SDK (from PyPI) as a real client of `roe serve`.

Serves the bundled model over HTTPS with an API key (a certificate made here with openssl), and
drives it with the SDK as an application would: models.list / retrieve, completions (n, stop,
logprobs, echo), chat (streamed, logprobs), a wrong key (AuthenticationError, 401), an unknown
model (NotFoundError, 404), refused fields (BadRequestError naming them). Then the same over
plain HTTP without a key. Exit status 0 when every check holds.

    /work/venv/bin/python tools/openai_clients.py [--roe build/roe]

Not run by ctest (it needs the tools venv: pip install openai); tests/e2e/serve_access.sh
covers the same access rules with curl.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FAILED = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + (f": {detail}" if detail and not ok else ""))
    if not ok:
        FAILED.append(name)


def serve(roe, model, tmp, extra):
    port_file = os.path.join(tmp, "port")
    if os.path.exists(port_file):
        os.remove(port_file)
    proc = subprocess.Popen([roe, "serve", "--model", model, "--port", "0", "--port-file", port_file,
                             "--max-model-len", "256"] + extra, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    for _ in range(600):
        if os.path.exists(port_file) and open(port_file).read().strip():
            return proc, int(open(port_file).read())
        if proc.poll() is not None:
            sys.exit(f"roe serve did not start: {proc.stderr.read()}")
        time.sleep(0.1)
    sys.exit("roe serve did not start within 60 s")


def exercise(openai, client, bad_client, name, label):
    models = client.models.list()
    check(f"{label} models.list", [m.id for m in models.data] == [name])
    check(f"{label} models.retrieve", client.models.retrieve(name).id == name)
    c = client.completions.create(model=name, prompt="Once upon a time", max_tokens=12, n=2, temperature=0.9,
                                  seed=3, logprobs=2)
    check(f"{label} completions: n=2 choices with logprobs", len(c.choices) == 2 and
          all(len(ch.logprobs.tokens) == len(ch.logprobs.token_logprobs) > 0 for ch in c.choices), str(c))
    whole = client.completions.create(model=name, prompt="Once upon a time", max_tokens=16, extra_body={"ignore_eos": True})
    text = whole.choices[0].text
    stop = text[3:6] if len(text) > 6 else None
    if stop:
        s = client.completions.create(model=name, prompt="Once upon a time", max_tokens=16, stop=[stop],
                                      extra_body={"ignore_eos": True})
        check(f"{label} completions: stop {stop!r}", s.choices[0].text == text[:text.index(stop)] and
              s.choices[0].finish_reason == "stop", f"{s.choices[0].text!r} vs {text!r}")
    e = client.completions.create(model=name, prompt="Q: 1 + 1 = ? A:", max_tokens=1, echo=True, logprobs=1)
    lp = e.choices[0].logprobs
    check(f"{label} completions: echo with the prompt's log-probabilities",
          e.choices[0].text.startswith("Q: 1 + 1 = ? A:") and lp.token_logprobs[0] is None and
          all(x is not None for x in lp.token_logprobs[1:]), str(lp))
    chunks = list(client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}],
                                                 max_tokens=8, stream=True, logprobs=True, top_logprobs=2))
    content = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    whole_chat = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=8)
    check(f"{label} chat: streamed = whole", content == whole_chat.choices[0].message.content,
          f"{content!r} vs {whole_chat.choices[0].message.content!r}")
    check(f"{label} chat: streamed logprobs", any(ch.choices and ch.choices[0].logprobs and
                                                  ch.choices[0].logprobs.content for ch in chunks))
    try:
        client.completions.create(model="gpt-4", prompt="x", max_tokens=1)
        check(f"{label} unknown model: 404", False)
    except openai.NotFoundError as x:
        check(f"{label} unknown model: NotFoundError (404)", x.status_code == 404)
    try:
        client.chat.completions.create(model=name, messages=[{"role": "user", "content": "x"}],
                                       tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}])
        check(f"{label} tools: 400", False)
    except openai.BadRequestError as x:
        check(f"{label} tools: BadRequestError naming 'tools'", "tools" in str(x))
    if bad_client is not None:
        try:
            bad_client.models.list()
            check(f"{label} wrong key: 401", False)
        except openai.AuthenticationError as x:
            check(f"{label} wrong key: AuthenticationError (401)", x.status_code == 401)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--roe", default=os.path.join(ROOT, "build", "roe"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "olmoe-tiny"))
    a = ap.parse_args()
    import openai

    name = os.path.basename(os.path.normpath(a.model))
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True)
        api_key = "sk-roe-" + os.urandom(8).hex()
        proc, port = serve(a.roe, a.model, tmp, ["--api-key", api_key, "--ssl-certfile", cert, "--ssl-keyfile", key])
        try:
            base = f"https://localhost:{port}/v1"
            client = openai.OpenAI(base_url=base, api_key=api_key, http_client=openai.DefaultHttpxClient(verify=cert))
            bad = openai.OpenAI(base_url=base, api_key="wrong", http_client=openai.DefaultHttpxClient(verify=cert), max_retries=0)
            exercise(openai, client, bad, name, "https + key:")
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        proc, port = serve(a.roe, a.model, tmp, [])
        try:
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")
            exercise(openai, client, None, name, "http:")
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    print(f"{'all checks hold' if not FAILED else str(len(FAILED)) + ' failed'} (openai {openai.__version__})")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
