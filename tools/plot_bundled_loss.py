#!/usr/bin/env python3
"""Plot the training loss curve of the bundled model from the training log.

Usage: python tools/plot_bundled_loss.py [--log .data/olmoe-tiny/train_log.jsonl]
                                         [--out models/olmoe-tiny/loss.png]
"""
import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", default=os.path.join(REPO, ".data", "olmoe-tiny", "train_log.jsonl"))
    ap.add_argument("--out", default=os.path.join(REPO, "models", "olmoe-tiny", "loss.png"))
    args = ap.parse_args()
    recs = [json.loads(line) for line in open(args.log)]
    steps = [r for r in recs if "step" in r]
    tok = np.array([r["tokens"] for r in steps]) / 1e6
    loss = np.array([r["loss"] for r in steps])
    aux = np.array([r["aux"] for r in steps])
    k = 25
    smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
    vals = [(r["tokens"] / 1e6, r["val_loss"]) for r in steps if "val_loss" in r]
    end = [r for r in recs if r.get("event") == "end"]
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    ax[0].plot(tok, loss, color="0.8", lw=0.6, label="train (per step)")
    ax[0].plot(tok[k - 1:], smooth, color="C0", lw=1.5, label="train (mean of %d steps)" % k)
    if vals:
        ax[0].plot(*zip(*vals), "o-", color="C3", ms=4, label="validation")
    if end:
        ax[0].plot([end[0]["tokens"] / 1e6], [end[0]["val_loss"]], "s", color="C3", ms=6)
    ax[0].set_xlabel("training tokens (millions)")
    ax[0].set_ylabel("cross-entropy (nats/token)")
    ax[0].set_ylim(max(0.0, loss.min() - 0.3), min(loss.max(), 8.5))
    ax[0].grid(alpha=0.3)
    ax[0].legend()
    ax[0].set_title("olmoe-tiny: language-model loss")
    ax[1].plot(tok, aux, color="C2", lw=0.6)
    ax[1].set_xlabel("training tokens (millions)")
    ax[1].set_ylabel("load-balancing loss")
    ax[1].grid(alpha=0.3)
    ax[1].set_title("router load-balancing loss (balanced = top-k)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
