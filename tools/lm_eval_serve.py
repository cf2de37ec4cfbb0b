#!/usr/bin/env python3
"""lm_eval_serve.py — lm-evaluation-harness (from PyPI) as a real client of `roe serve`.

The harness's `local-completions` model scores each choice of a multiple-choice set with the
request it sends any OpenAI-compatible server: the context and continuation as token ids, `echo`,
`logprobs: 1`, `max_tokens: 1`, and reads the prompt's log-probabilities back. This script serves
the bundled model, runs the harness on the bundled multiple-choice set (models/olmoe-tiny/eval/
choice-test.jsonl) through it, and checks that the accuracy equals `roe eval`'s on the same set
(the same scores: the server's prompt log-probabilities are roe eval's, bit for bit).

Each input is prefixed with <|endoftext|> as `roe eval` does (tools/eval_bundled.py's rule); the
harness tokenizes with the server's own tokenizer (`tokenizer_backend=remote`: GET
/tokenizer_info, POST /tokenize and /detokenize, as it does against vLLM), or with Hugging Face's
from the model directory (--hf-tokenizer).

    /work/venv/bin/python tools/lm_eval_serve.py [--roe build/roe] [--limit N] [--roe-k 4 --roe-tau 0.5]

Exit status 0 when the accuracies are equal. Not run by ctest: it needs the tools venv (pip
install lm-eval[api]).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

TASK_YAML = """task: roe_bundled_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "<|endoftext|>{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
target_delimiter: ""
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


def start_server(roe, model, port_file, extra):
    cmd = [roe, "serve", "--model", model, "--port", "0", "--port-file", port_file] + extra
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for _ in range(600):
        if os.path.exists(port_file) and open(port_file).read().strip():
            return proc, int(open(port_file).read())
        if proc.poll() is not None:
            sys.exit(f"roe serve did not start: {proc.stderr.read()}")
        time.sleep(0.1)
    proc.kill()
    sys.exit("roe serve did not start within 60 s")


def roe_eval(roe, model, data, limit, roe_flags):
    cmd = [roe, "eval", "--model", model, "--data", data, "--task", "choice", "--json"]
    if limit:
        cmd += ["--limit", str(limit)]
    out = subprocess.run(cmd + roe_flags, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--roe", default=os.path.join(ROOT, "build", "roe"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "olmoe-tiny"))
    ap.add_argument("--data", default=os.path.join(ROOT, "models", "olmoe-tiny", "eval", "choice-test.jsonl"))
    ap.add_argument("--limit", type=int, default=0, help="items (0: all)")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--hf-tokenizer", action="store_true", help="tokenize with transformers, not the server")
    ap.add_argument("--roe-k", type=int, default=0)
    ap.add_argument("--roe-tau", type=float, default=0.0)
    a = ap.parse_args()

    import lm_eval  # the tools venv: pip install "lm-eval[api]"

    roe_flags = ["--roe-k", str(a.roe_k), "--roe-tau", str(a.roe_tau)] if a.roe_k > 1 else []
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "roe_bundled_choice.yaml"), "w") as f:
            f.write(TASK_YAML.format(data=os.path.abspath(a.data)))
        proc, port = start_server(a.roe, a.model, os.path.join(tmp, "port"),
                                  ["--max-seqs", str(max(4, a.concurrency)), "--max-model-len", "512"] + roe_flags)
        try:
            t0 = time.time()
            model_args = {
                "base_url": f"http://127.0.0.1:{port}/v1/completions",
                "model": os.path.basename(os.path.normpath(a.model)),
                "num_concurrent": a.concurrency,
                "max_retries": 3,
                "tokenized_requests": True,
                "tokenizer_backend": "huggingface" if a.hf_tokenizer else "remote",
                "max_length": 512,
            }
            if a.hf_tokenizer:
                model_args["tokenizer"] = os.path.abspath(a.model)
            res = lm_eval.simple_evaluate(
                model="local-completions",
                model_args=",".join(f"{k}={v}" for k, v in model_args.items()),
                tasks=["roe_bundled_choice"],
                task_manager=lm_eval.tasks.TaskManager(include_path=tmp),
                limit=a.limit or None,
            )
            harness_s = time.time() - t0
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    acc = res["results"]["roe_bundled_choice"]["acc,none"]
    n = res["n-samples"]["roe_bundled_choice"]["effective"]
    t0 = time.time()
    # the harness sends seed 1234 with every request: RoE's noise is keyed on it
    ev = roe_eval(a.roe, a.model, a.data, a.limit, roe_flags + (["--seed", "1234"] if roe_flags else []))
    eval_s = time.time() - t0
    print(json.dumps({"items": n, "lm_eval_through_roe_serve": {"acc": acc, "seconds": round(harness_s, 1)},
                      "roe_eval": {"acc": ev["accuracy"], "seconds": round(eval_s, 1)},
                      "tokenizer": "huggingface" if a.hf_tokenizer else "remote (the server's /tokenize)",
                      "roe": roe_flags or "plain"}, indent=2))
    if abs(acc - ev["accuracy"]) > 1e-12:
        print(f"MISMATCH: lm-eval through roe serve {acc} != roe eval {ev['accuracy']}", file=sys.stderr)
        return 1
    print(f"equal: accuracy {acc:.4f} on {n} items, through the server and in roe eval")
    return 0


if __name__ == "__main__":
    sys.exit(main())
