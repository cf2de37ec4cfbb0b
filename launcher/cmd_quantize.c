/*
 * cmd_quantize.c — `roe quantize`: a checkpoint's weights block-quantized once and saved, so
 * that `roe ... --model OUT` starts without quantizing (runtime/quant.h, docs/QUANTIZATION.md).
 */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "base/clock.h"
#include "commands.h"
#include "runtime/quant.h"
#include "session.h"

static const char *CMD = "quantize";
static const char *SYNOPSIS = "[--model DIR] --weights q8|q4 --out DIR";

int roe_cmd_quantize(int argc, char **argv) {
    const char *model_dir = NULL, *weights = NULL, *out = NULL;
    struct roe_arg_spec specs[] = {
        {"--model", ROE_ARG_STRING, &model_dir, "float checkpoint to quantize (default: the bundled model)", 0, 0},
        {"--weights", ROE_ARG_STRING, &weights, "q8 | q4", 0, 0},
        {"--out", ROE_ARG_STRING, &out, "directory to write (created; must not hold a model.safetensors)", 0, 0},
    };
    int rc = roe_args_parse(CMD, SYNOPSIS, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv, 2);
    if (rc) return rc == 1 ? 0 : rc;
    roe_weights w;
    if (!weights || !out || !roe_weights_parse(weights, &w) || w == ROE_WEIGHTS_BF16) {
        fprintf(stderr, "roe quantize: needs --weights q8|q4 and --out DIR\n");
        return 2;
    }
    if (roe_session_world_size() > 1) {
        fprintf(stderr, "roe quantize: runs in one process (not under mpirun)\n");
        return 2;
    }
    struct roe_session s;
    if (roe_session_open_model(&s, CMD, model_dir)) {
        roe_session_close(&s);
        return 1;
    }
    const double t0 = roe_now_s();
    roe_status st = roe_model_quantize(s.model, w);
    if (st == ROE_OK) st = roe_model_save(s.model, w, out);
    if (st != ROE_OK) rc = roe_report(CMD, st);
    else
        fprintf(stderr, "roe quantize: %s -> %s (%s, %.0f MB of weights held) in %.1f s\n", s.model_dir, out, weights,
                s.model->held_bytes / 1e6, roe_now_s() - t0);
    roe_session_close(&s);
    return rc;
}
