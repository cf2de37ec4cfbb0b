/*
 * matmul_q.h — what matmul_q.c (the VNNI / AVX-512BW / AVX2 / portable paths of the block
 * dtypes Q8 and Q4) shares with matmul_q_amx.c (their batched rows on AMX-INT8 tiles): the x
 * rows as prepared once per call.
 */
#ifndef ROE_CPU_MATMUL_Q_H
#define ROE_CPU_MATMUL_Q_H

#include <stddef.h>
#include <stdint.h>

#include "cpu_impl.h"

struct qx {
    int nb;            /* blocks per row (W's row_blocks: whole groups of 16) */
    const int8_t *xq;  /* [rows, sq] per group of 16 blocks 8 chunks of 64 bytes, lane l = block l:
                          Q8 chunk k: values 4k..4k+3; Q4 chunk 2j: 4j..4j+3, chunk 2j+1: 16+4j.. */
    const float *dx;   /* [rows, sb] dx of each block */
    const int32_t *xc; /* Q8 [rows, sb]: -128 x the block's sum of xq (VNNI's q + 128 offset) */
    const float *sx;   /* Q4 [rows, sb]: dx x the block's sum of xq (for the m term) */
    size_t sq, sb;
};

/* The prepared rows as matmul_q_amx.c's A tiles, written by the AVX-512 prep beside struct qx's
 * layout: a[((i / 16) * nb + b) * 16 + i % 16][32] (block b of row i, its values in order), and
 * its dx and sx at [(i / 16) * nb + b][i % 16] (a block's 16 rows side by side). */
struct qamx_x {
    int8_t *a;
    float *dx, *sx;
};
struct qamx_x roe_cpu_qamx_x(const struct roe_cpu *cpu);

/* x rows from which matmul_q.c hands a call's prepared rows to the AMX tiles (fewer: the VNNI
 * tiles, which do not repack W; the bits are the same either way). */
enum { ROE_CPU_QAMX_MIN_ROWS = 24 };

/* y[i * rows + r] for the n prepared rows of x (struct qx and struct qamx_x both written) and
 * every row r of W, on AMX-INT8 tiles: the same bits as the other paths. Threads split W's 16-row
 * blocks. */
void roe_cpu_matmul_q_amx(struct roe_cpu *cpu, const struct roe_mat *w, const struct qx *x, int n, float *y);

#endif
