/*
 * cmp_logits.c — compares two --logits-out files (f32, [tokens, vocab] in generation order)
 * for tests/cuda/e2e_cuda.sh: prints max|a - b|, max|b| and their ratio (the normalised
 * error), and exits 0 if the ratio is at most TOL, 1 if not, 2 on bad files.
 * Usage: cmp_logits A.f32 B.f32 TOL
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: cmp_logits A.f32 B.f32 TOL\n");
        return 2;
    }
    FILE *a = fopen(argv[1], "rb"), *b = fopen(argv[2], "rb");
    if (!a || !b) {
        fprintf(stderr, "cmp_logits: cannot open %s\n", !a ? argv[1] : argv[2]);
        return 2;
    }
    const double tol = atof(argv[3]);
    double maxd = 0.0, maxb = 0.0;
    long n = 0;
    float x, y;
    for (;;) {
        const size_t ra = fread(&x, sizeof x, 1, a), rb = fread(&y, sizeof y, 1, b);
        if (ra != rb) {
            fprintf(stderr, "cmp_logits: %s and %s differ in length (after %ld values)\n", argv[1], argv[2], n);
            return 2;
        }
        if (!ra) break;
        const double d = fabs((double)x - (double)y);
        if (!(d <= maxd)) maxd = d; /* NaN: infinitely wrong */
        if (fabs((double)y) > maxb) maxb = fabs((double)y);
        n++;
    }
    if (n == 0) {
        fprintf(stderr, "cmp_logits: no values\n");
        return 2;
    }
    const double ratio = maxb > 0 ? maxd / maxb : maxd;
    printf("%ld values: max|a-b| %.4g, max|b| %.4g, normalised %.4g (tol %.3g)\n", n, maxd, maxb, ratio, tol);
    return ratio <= tol ? 0 : 1;
}
