#!/usr/bin/env python3
"""Turns the results of tools/quality_study.sh (docs/quality/results/*.json) into the tables
and plots of docs/QUALITY.md: docs/quality/tables.md, tau_sweep.png, k_sweep.png, adaptive.png.

    .venv/bin/python tools/quality_report.py
"""
import glob
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RES = os.path.join(ROOT, "docs", "quality", "results")
OUT = os.path.join(ROOT, "docs", "quality")


def load(name):
    p = os.path.join(RES, name + ".json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def metric(r):
    """(value, lo, hi, label) of a result: perplexity for text, else accuracy."""
    if r is None:
        return None
    if r["task"] == "text":
        return r["perplexity"], r["perplexity_ci95"][0], r["perplexity_ci95"][1], "perplexity"
    if r["task"] == "arith":
        return r["exact_match"], r["exact_match_ci95"][0], r["exact_match_ci95"][1], "exact match"
    return r["accuracy"], r["accuracy_ci95"][0], r["accuracy_ci95"][1], "accuracy"


def cell(r):
    m = metric(r)
    if m is None:
        return "—"
    if r["task"] == "text":
        return "%.3f [%.3f, %.3f]" % m[:3]
    return "%.3f [%.3f, %.3f]" % m[:3]


TASKS = ["text", "arith", "choice"]
HEAD = "| | perplexity (text) | exact match (arith) | accuracy (choice) | samples/token | rows computed / naive |\n|---|---|---|---|---|---|\n"


def row(label, names):
    rs = [load(n) for n in names]
    spt = [r["samples_per_position"] for r in rs if r]
    rows = [(r["rows_computed"], r["rows_naive"]) for r in rs if r and r["rows_naive"]]
    ratio = sum(a for a, _ in rows) / sum(b for _, b in rows) if rows else float("nan")
    return "| %s | %s | %s | %s | %.2f | %.2f |\n" % (
        label, cell(rs[0]), cell(rs[1]), cell(rs[2]), sum(spt) / len(spt) if spt else float("nan"), ratio)


def main():
    md = []
    md.append("### K sweep (tuned per-task profiles, test splits)\n\n" + HEAD)
    for k in [1, 2, 4, 8, 16, 32]:
        md.append(row("K=%d" % k, ["k%d-%s" % (k, t) for t in TASKS]))
    md.append("\n### Gate weights of the sampled experts (K=8, tuned profiles)\n\n" + HEAD)
    for g in ["clean", "noisy"]:
        md.append(row(g, ["gate-%s-%s" % (g, t) for t in TASKS]))
    md.append("\n### Adaptive K (K=8 where the clean entropy exceeds H) vs fixed K\n\n" + HEAD)
    for h in ["0.5", "1", "2", "3"]:
        md.append(row("adaptive H=%s" % h, ["adapt%s-%s" % (h, t) for t in TASKS]))
    for k in [1, 2, 4, 8]:
        md.append(row("fixed K=%d" % k, ["k%d-%s" % (k, t) for t in TASKS]))
    md.append("\n### Single tau for all middle MoE layers (K=8, keep-clean 1)\n\n| tau | perplexity (text) | accuracy (choice) |\n|---|---|---|\n")
    taus = ["0", "0.1", "0.2", "0.3", "0.5", "0.7", "1.0"]
    for tau in taus:
        md.append("| %s | %s | %s |\n" % (tau, cell(load("tau%s-text" % tau)), cell(load("tau%s-choice" % tau))))
    big = [load("big-%s" % t) for t in TASKS]
    if any(big):
        md.append("\n### The 1.5x model (plain) vs the bundled model + RoE\n\n" + HEAD)
        md.append(row("bundled, plain", ["k1-%s" % t for t in TASKS]))
        md.append(row("bundled + RoE K=8", ["k8-%s" % t for t in TASKS]))
        md.append(row("bundled + RoE K=32", ["k32-%s" % t for t in TASKS]))
        md.append(row("1.5x model, plain", ["big-%s" % t for t in TASKS]))
        md.append("\n| decode latency (batch 1, 1 thread) | ms/token | tokens/s |\n|---|---|---|\n")
        for name, label in [("small-k1", "bundled, plain"), ("small-k8", "bundled + RoE K=8"),
                            ("small-k32", "bundled + RoE K=32"), ("big-k1", "1.5x model, plain")]:
            r = load("latency-" + name)
            if r:
                md.append("| %s | %.3f | %.1f |\n" % (label, r["decode_step_mean_s"] * 1e3, r["decode_tokens_per_s"]))
    with open(os.path.join(OUT, "tables.md"), "w") as f:
        f.write("".join(md))

    # plots
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    # the middle panel: the perplexity change against tau = 0 on the same passages (the
    # intervals of the left panel are over passages, far wider than any paired difference)
    base = metric(load("tau0-text"))
    if base:
        xs, ys = [], []
        for tau in taus:
            m = metric(load("tau%s-text" % tau))
            if m:
                xs.append(float(tau)), ys.append(100.0 * (m[0] / base[0] - 1.0))
        axes[1].plot(xs, ys, marker="o")
        axes[1].axhline(0.0, color="grey", lw=0.8)
        axes[1].set_xlabel("tau (all middle MoE layers), K=8")
        axes[1].set_ylabel("perplexity change vs tau = 0 (%)")
        axes[1].set_title("text test split, same passages")
        axes[1].grid(alpha=0.3)
    for ax, t in zip([axes[0], axes[2]], ["text", "choice"]):
        xs, ys, lo, hi = [], [], [], []
        for tau in taus:
            m = metric(load("tau%s-%s" % (tau, t)))
            if m:
                xs.append(float(tau)), ys.append(m[0]), lo.append(m[0] - m[1]), hi.append(m[2] - m[0])
        if xs:
            ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3)
            ax.set_xlabel("tau (all middle MoE layers), K=8")
            ax.set_ylabel(metric(load("tau0-%s" % t))[3] if load("tau0-%s" % t) else t)
            ax.set_title("%s test split" % t)
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "tau_sweep.png"), dpi=110)

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, t in zip(axes, TASKS):
        ks, ys, lo, hi = [], [], [], []
        for k in [1, 2, 4, 8, 16, 32]:
            m = metric(load("k%d-%s" % (k, t)))
            if m:
                ks.append(k), ys.append(m[0]), lo.append(m[0] - m[1]), hi.append(m[2] - m[0])
        if ks:
            ax.errorbar(ks, ys, yerr=[lo, hi], marker="o", capsize=3, label="fixed K")
            ax.set_xscale("log", base=2)
            xa, ya = [], []
            for h in ["0.5", "1", "2", "3"]:
                r = load("adapt%s-%s" % (h, t))
                if r:
                    xa.append(r["samples_per_position"]), ya.append(metric(r)[0])
            if xa:
                ax.plot(xa, ya, "s--", label="adaptive K=8")
            ax.set_xlabel("samples per token")
            ax.set_ylabel(metric(load("k1-%s" % t))[3])
            ax.set_title(t)
            ax.grid(alpha=0.3)
            ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "k_sweep.png"), dpi=110)
    print("wrote", os.path.join(OUT, "tables.md"), "and the plots")


if __name__ == "__main__":
    main()
