#!/usr/bin/env bash
# `roe tokenize` against Hugging Face `tokenizers`, one tokenizer per model family's style
# (tests/data/tokenizer/families, made by tools/make_tokenizer_families.py): every one of the
# ~5,000 shared strings must encode to the ids `tokenizers` gave, and decode(ids) must give the
# text `tokenizers` gave back — the string itself unless decoded.tsv.gz lists it (a normalizer
# changed it, or the style is lossy), so every other string round-trips. Also the command's
# interface: plain and --json output, ids to text, and its errors.
. "$(dirname "$0")/lib.bash"

DIR=tests/data/tokenizer/families
FAMILIES="gpt2 neox llama3 qwen2 o200k deepseek_v3 llama2 llama2_metaspace wordbound"
TMP=$(mktemp -d /tmp/roe_tokenize.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

gzip -dc "$DIR/strings.jsonl.gz" > "$TMP/strings.jsonl" || { fail "cannot read $DIR/strings.jsonl.gz"; finish; exit; }
N=$(wc -l < "$TMP/strings.jsonl")
[ "$N" -ge 5000 ] && pass "$N test strings" || fail "only $N test strings (want at least 5000)"

for f in $FAMILIES; do
    tok="$DIR/$f/tokenizer.json"
    if ! timeout 120 "$ROE" tokenize --tokenizer "$tok" --input "$TMP/strings.jsonl" > "$TMP/$f.out" 2> "$TMP/$f.err"; then
        fail "$f: roe tokenize failed: $(head -3 "$TMP/$f.err")"
        continue
    fi
    # ids: {"ids":[1,2,3],"text":...} -> 1,2,3
    sed -E 's/^\{"ids":\[([0-9,]*)\],"text":.*$/\1/' "$TMP/$f.out" > "$TMP/$f.ids"
    gzip -dc "$DIR/$f/ids.gz" > "$TMP/$f.want"
    bad=$(paste -d '\n' "$TMP/$f.ids" "$TMP/$f.want" | awk 'NR % 2 { a = $0; next } a != $0 { n++ } END { print n + 0 }')
    lines=$(wc -l < "$TMP/$f.ids")
    if [ "$lines" -eq "$N" ] && [ "$bad" -eq 0 ]; then
        pass "$f: $N strings encode to the ids of tokenizers"
    else
        first=$(paste -d '\n' "$TMP/$f.ids" "$TMP/$f.want" | awk 'NR % 2 { a = $0; next } a != $0 { print NR / 2; exit }')
        fail "$f: $bad of $N strings encode differently ($lines answers); first: string $first $(sed -n "${first}p" "$TMP/strings.jsonl")"
        echo "    roe:        $(sed -n "${first}p" "$TMP/$f.ids")"
        echo "    tokenizers: $(sed -n "${first}p" "$TMP/$f.want")"
    fi
    # text: the decoded string, as JSON; wanted: the input line unless decoded.tsv.gz has it
    sed -E 's/^\{"ids":\[[0-9,]*\],"text":(.*)\}$/\1/' "$TMP/$f.out" > "$TMP/$f.text"
    gzip -dc "$DIR/$f/decoded.tsv.gz" > "$TMP/$f.tsv"
    awk -F '\t' 'FILENAME == ARGV[1] { d[$1] = substr($0, length($1) + 2); next } { print (FNR in d) ? d[FNR] : $0 }' \
        "$TMP/$f.tsv" "$TMP/strings.jsonl" > "$TMP/$f.wanttext"
    rt=$((N - $(wc -l < "$TMP/$f.tsv")))
    bad=$(paste -d '\n' "$TMP/$f.text" "$TMP/$f.wanttext" | awk 'NR % 2 { a = $0; next } a != $0 { n++ } END { print n + 0 }')
    if [ "$bad" -eq 0 ]; then
        pass "$f: decode gives the text of tokenizers for all $N ($rt round-trip exactly)"
    else
        first=$(paste -d '\n' "$TMP/$f.text" "$TMP/$f.wanttext" | awk 'NR % 2 { a = $0; next } a != $0 { print NR / 2; exit }')
        fail "$f: $bad of $N strings decode differently; first: string $first"
        echo "    roe:        $(sed -n "${first}p" "$TMP/$f.text")"
        echo "    tokenizers: $(sed -n "${first}p" "$TMP/$f.wanttext")"
    fi
done

# the interface
T="$DIR/gpt2/tokenizer.json"
out=$("$ROE" tokenize --tokenizer "$T" --text "in the end" --ids 1,2 2>&1) &&
    echo "$out" | grep -q '^tokens  \["in","Ġthe","Ġend"\]' && echo "$out" | grep -q '^pieces  \["in"," the"," end"\]' &&
    echo "$out" | grep -q '^text    "\\"#"' && pass "plain output: tokens, pieces, ids to text" || fail "plain output: $out"
out=$("$ROE" tokenize --tokenizer "$T" --text "in the end" --json 2>&1) &&
    echo "$out" | grep -q '"count":	3' && echo "$out" | grep -q '"pieces":	\["in", " the", " end"\]' &&
    pass "--json" || fail "--json: $out"
out=$(printf '{"ids":[1,2]}\n' | "$ROE" tokenize --tokenizer "$T" --input - 2>&1) &&
    [ "$out" = '{"text":"\"#"}' ] && pass "--input: ids to text" || fail "--input ids: $out"
out=$("$ROE" tokenize --tokenizer "$DIR/llama2/tokenizer.json" --text "Hi 🩷!" --json 2>&1) &&
    echo "$out" | grep -q '"<0xF0>", "<0x9F>", "<0xA9>", "<0xB7>"' && pass "SentencePiece byte fallback for 🩷" ||
    fail "llama2 byte fallback: $out"
expect_fail "--text and --input" "give --text TEXT or --ids IDS" "$ROE" tokenize --tokenizer "$T" --text a --input x
expect_fail "nothing to do" "give --text TEXT or --ids IDS" "$ROE" tokenize --tokenizer "$T"
expect_fail "--model and --tokenizer" "not both" "$ROE" tokenize --tokenizer "$T" --model models/olmoe-tiny --text a
expect_fail "bad id list" "--ids '1,x': expected comma-separated token ids" "$ROE" tokenize --tokenizer "$T" --ids 1,x
expect_fail "id out of range" "ids[1] = 999999 is not a token id" "$ROE" tokenize --tokenizer "$T" --ids 1,999999
expect_fail "missing tokenizer" "cannot open" "$ROE" tokenize --tokenizer /nonexistent/tokenizer.json --text a
expect_fail "bad input line" "line 2: expected a JSON string" sh -c "printf '\"a\"\n[1]\n' | $ROE tokenize --tokenizer $T --input -"
expect_fail "input not JSON" "line 1: not valid JSON" sh -c "printf 'oops\n' | $ROE tokenize --tokenizer $T --input -"
expect_fail "invalid UTF-8" "invalid UTF-8 at byte offset 1" "$ROE" tokenize --tokenizer "$T" --text "$(printf 'a\377')"
finish
