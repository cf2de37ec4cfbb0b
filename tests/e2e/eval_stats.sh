#!/usr/bin/env bash
# roe eval's text statistics beyond perplexity, on the bundled model:
#  - the averaging gain (docs/QUALITY.md, issue 19): at K = 1 the samples' own loss is the loss
#    (gain 0); with RoE the averaged prediction never scores worse than its samples (Jensen);
#  - the gap to a known optimum: items with "optimum_nll" that fit the context are summed, a cut
#    one is left out; the optimum per token is their sum over their token count, which is taken
#    here from `roe tokenize`, and the gap is the model's loss on those items (a separate eval of
#    them alone) minus it.
. "$(dirname "$0")/lib.bash"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
field() { grep -m1 "\"$2\":" "$1" | sed -e 's/^[^:]*:[[:space:]]*//' -e 's/,$//'; } # FILE KEY: a number
check() { awk "BEGIN { exit !($1) }"; } # an awk condition on numbers

a="the cat sat on the mat. the dog barked all night."
b="Q: 4821 + 379 = ? A: 5200"
long=$(for i in $(seq 1 700); do printf 'word%d ' "$i"; done) # over 1,024 tokens: cut
printf '{"text": "%s", "optimum_nll": 1.5}\n{"text": "%s", "optimum_nll": 2.5}\n{"text": "%s", "optimum_nll": 1000}\n' \
    "$a" "$b" "$long" > "$tmp/three.jsonl"
head -2 "$tmp/three.jsonl" > "$tmp/two.jsonl"

timeout 120 "$ROE" eval --data "$tmp/three.jsonl" --json > "$tmp/k1.json" 2>/dev/null || fail "eval K=1 failed"
timeout 120 "$ROE" eval --data "$tmp/two.jsonl" --json > "$tmp/two.json" 2>/dev/null || fail "eval of two items failed"
timeout 300 "$ROE" eval --data "$tmp/two.jsonl" --roe-k 4 --roe-tau 0.5 --json > "$tmp/k4.json" 2>/dev/null ||
    fail "eval K=4 failed"

g1=$(field "$tmp/k1.json" averaging_gain)
check "$g1 <= 1e-9 && $g1 >= -1e-9" && pass "K=1: averaging gain $g1 (the samples' loss is the loss)" ||
    fail "K=1: averaging gain $g1, expected 0"
n4=$(field "$tmp/k4.json" nll_per_token); s4=$(field "$tmp/k4.json" sample_nll_per_token)
check "$n4 <= $s4 + 1e-12 && $s4 - $n4 > 1e-6" &&
    pass "K=4 tau 0.5: averaged $n4 < samples' own $s4 (gain > 0)" || fail "K=4: averaged $n4, samples $s4"

ntok() { "$ROE" tokenize --text "$1" --json 2>/dev/null | grep -m1 '"ids":' | sed 's/\].*//' | tr -cd , | wc -c | awk '{ print $1 + 1 }'; }
na=$(ntok "$a"); nb=$(ntok "$b")
items=$(field "$tmp/k1.json" optimum_items); opt=$(field "$tmp/k1.json" optimum_nll_per_token)
gap=$(field "$tmp/k1.json" gap_to_optimum); two=$(field "$tmp/two.json" nll_per_token)
[ "$items" = 2 ] && pass "optimum over 2 items (the cut one left out)" || fail "optimum_items $items, expected 2"
check "$opt - 4.0 / ($na + $nb) <= 1e-12 && 4.0 / ($na + $nb) - $opt <= 1e-12" && pass "optimum per token = 4.0 / ($na + $nb) tokens" ||
    fail "optimum_nll_per_token $opt, expected 4.0 / ($na + $nb)"
check "$gap - ($two - $opt) <= 1e-9 && ($two - $opt) - $gap <= 1e-9" && pass "gap = the two items' loss $two - optimum" ||
    fail "gap_to_optimum $gap, expected $two - $opt"
finish
