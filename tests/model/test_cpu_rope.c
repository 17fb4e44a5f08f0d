// test_cpu_rope.c - RoPE, rotate-half, on both CPU instances.
// - literals: q = (1, 2, 3, 4), dh = 4, positions 0, 1, 2, theta 1e4 and 1.6e5. With dh = 4
//   the pairs are (0, 2) at frequency theta^0 = 1 and (1, 3) at theta^(-2/4) = 1/sqrt(theta)
//   (1/100, 1/400); e.g. at pos 1, theta 1e4: q0' = 1 cos 1 - 3 sin 1 = -1.98411064855555,
//   q1' = 2 cos .01 - 4 sin .01 = 1.95990066749666, q2' = 3 cos 1 + 1 sin 1, q3' = 4 cos .01 +
//   2 sin .01.
// - the same formula written out per element for random q, k over two heads (head-major
//   layout, v untouched)
// - properties: pair norms preserved, rope_bwd after rope_fwd is the identity, scores depend
//   only on relative position, position 0 is the identity, positions restarting per sequence
//   (the caller's pos array) give the same rows, and float stays accurate at pos ~ 8000.
#include <string.h>

#include "model/backend.h"
#include "tests/testutil.h"

static const nv_backend *B;
static double TOL; // 1e-14 on cpu-f64, 1e-6 on cpu (float)

// apply rope_fwd (or bwd) on the backend to host double rows qkv [n, 3 H dh]
static void rope(double *qkv, const int32_t *pos, int n, int H, int dh, double theta, int bwd) {
    const size_t m = (size_t)n * 3 * H * dh;
    void *x = B->alloc(m * B->act_bytes);
    int32_t *p = B->alloc(n * 4);
    B->to_device(p, pos, n * 4);
    B->upload_act(x, qkv, m);
    (bwd ? B->rope_bwd : B->rope_fwd)(x, p, n, H, dh, theta);
    B->download_act(qkv, x, m);
    B->free(x), B->free(p);
}

static double *randn(size_t n) {
    double *x = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) x[i] = tu_normal();
    if (B->act_bytes == 4)
        for (size_t i = 0; i < n; i++) x[i] = (float)x[i]; // exactly representable inputs
    return x;
}

static void near(double got, double want, const char *what, int i) {
    CHECK(fabs(got - want) <= TOL * fmax(1, fabs(want)), "%s %s[%d]: %.15g vs %.15g", B->name,
          what, i, got, want);
}

static void test_literals(void) {
    // [theta][pos][q0', q1', q2', q3'] for q = (1, 2, 3, 4); pos 0 is q itself
    static const double want[2][3][4] = {
        {{1, 2, 3, 4},
         {-1.9841106485555495, 1.959900667496664, 2.4623779024123156, 4.019799668334994},
         {-3.1440391170241875, 1.9196053465598233, -0.33914308281574557, 4.039197360052977}},
        {{1, 2, 3, 4},
         {-1.9841106485555495, 1.9899937604199187, 2.4623779024123156, 4.004987494798178},
         {-3.1440391170241875, 1.9799750833853125, -0.33914308281574557, 4.009949958437552}},
    };
    const double thetas[2] = {10000, 160000};
    const int32_t pos[3] = {0, 1, 2};
    for (int t = 0; t < 2; t++) {
        double qkv[3][12];
        for (int i = 0; i < 3; i++)
            for (int c = 0; c < 4; c++) // q = k = v = (1, 2, 3, 4)
                qkv[i][c] = qkv[i][4 + c] = qkv[i][8 + c] = c + 1;
        rope(&qkv[0][0], pos, 3, 1, 4, thetas[t], 0);
        for (int i = 0; i < 3; i++)
            for (int c = 0; c < 4; c++) {
                near(qkv[i][c], want[t][i][c], "literal q", i * 4 + c);
                near(qkv[i][4 + c], want[t][i][c], "literal k", i * 4 + c);
                CHECK(qkv[i][8 + c] == c + 1, "v changed");
            }
    }
}

// random q, k, two heads, against the pair formula written out per element
static void test_formula(double theta) {
    const int n = 5, H = 2, dh = 4, d = H * dh;
    int32_t pos[5];
    for (int i = 0; i < n; i++) pos[i] = tu_int(0, 100);
    double *x = randn(n * 3 * d), *y = malloc(n * 3 * d * 8);
    memcpy(y, x, n * 3 * d * 8);
    rope(y, pos, n, H, dh, theta, 0);
    const double f1 = 1 / sqrt(theta); // theta^(-2*1/4)
    for (int i = 0; i < n; i++) {
        const double p = pos[i];
        for (int part = 0; part < 2; part++) // q then k
            for (int h = 0; h < H; h++) {
                const double *a = x + i * 3 * d + part * d + h * dh;
                const double *b = y + i * 3 * d + part * d + h * dh;
                near(b[0], a[0] * cos(p) - a[2] * sin(p), "formula x0", i);
                near(b[2], a[2] * cos(p) + a[0] * sin(p), "formula x2", i);
                near(b[1], a[1] * cos(p * f1) - a[3] * sin(p * f1), "formula x1", i);
                near(b[3], a[3] * cos(p * f1) + a[1] * sin(p * f1), "formula x3", i);
            }
        CHECK(!memcmp(x + i * 3 * d + 2 * d, y + i * 3 * d + 2 * d, d * 8), "v changed");
    }
    free(x), free(y);
}

static double dot(const double *a, const double *b, int n) {
    double s = 0;
    for (int c = 0; c < n; c++) s += a[c] * b[c];
    return s;
}

static void test_properties(double theta) {
    const int n = 8, H = 3, dh = 16, d = H * dh, half = dh / 2;
    int32_t pos[8];
    for (int i = 0; i < n; i++) pos[i] = tu_int(0, 2000);
    double *x = randn(n * 3 * d), *y = malloc(n * 3 * d * 8);
    memcpy(y, x, n * 3 * d * 8);
    rope(y, pos, n, H, dh, theta, 0);
    // every rotated pair keeps its length
    for (int i = 0; i < n; i++)
        for (int t = 0; t < 2 * H; t++)
            for (int j = 0; j < half; j++) {
                const double *a = x + i * 3 * d + t * dh, *b = y + i * 3 * d + t * dh;
                near(hypot(b[j], b[j + half]), hypot(a[j], a[j + half]), "pair norm", i);
            }
    // the backward is the inverse rotation
    rope(y, pos, n, H, dh, theta, 1);
    for (int k = 0; k < n * 3 * d; k++) near(y[k], x[k], "bwd(fwd(x))", k);

    // q.k after rotation depends on pos_q - pos_k only
    int32_t p2[2] = {tu_int(0, 500), tu_int(0, 500)}, p3[2];
    const int shift = tu_int(1, 3000);
    p3[0] = p2[0] + shift, p3[1] = p2[1] + shift;
    double *a = randn(2 * 3 * d), *b = malloc(2 * 3 * d * 8);
    memcpy(b, a, 2 * 3 * d * 8);
    rope(a, p2, 2, H, dh, theta, 0);
    rope(b, p3, 2, H, dh, theta, 0);
    for (int h = 0; h < H; h++) { // q of row 0 against k of row 1
        const double s1 = dot(a + h * dh, a + 3 * d + d + h * dh, dh);
        const double s2 = dot(b + h * dh, b + 3 * d + d + h * dh, dh);
        CHECK(fabs(s1 - s2) <= 100 * TOL * fmax(1, fabs(s1)), "%s relative position: %g vs %g",
              B->name, s1, s2);
    }

    // positions restart per sequence: two packed sequences with the same tokens
    int32_t pp[8] = {0, 1, 2, 3, 4, 0, 1, 2};
    double *z = randn(n * 3 * d);
    memcpy(z + 5 * 3 * d, z, 3 * 3 * d * 8); // rows 5..7 = rows 0..2
    double *z0 = malloc(n * 3 * d * 8);
    memcpy(z0, z, n * 3 * d * 8);
    rope(z, pp, n, H, dh, theta, 0);
    CHECK(!memcmp(z + 5 * 3 * d, z, 3 * 3 * d * 8), "%s restarted positions differ", B->name);
    CHECK(!memcmp(z, z0, 3 * d * 8), "%s position 0 is not the identity", B->name);
    CHECK(memcmp(z + 3 * d, z0 + 3 * d, 3 * d * 8), "%s position 1 did nothing", B->name);

    // long positions: the rotation stays accurate (angles in double, not pos * freq in float)
    int32_t pl[2] = {tu_int(7000, 8191), tu_int(7000, 8191)};
    double *w = randn(2 * 3 * d), *w0 = malloc(2 * 3 * d * 8);
    memcpy(w0, w, 2 * 3 * d * 8);
    rope(w, pl, 2, H, dh, theta, 0);
    for (int i = 0; i < 2; i++)
        for (int t = 0; t < 2 * H; t++)
            for (int j = 0; j < half; j++) {
                const double ang = pl[i] * pow(theta, -2.0 * j / dh);
                const double *u = w0 + i * 3 * d + t * dh, *r = w + i * 3 * d + t * dh;
                near(r[j], u[j] * cos(ang) - u[j + half] * sin(ang), "long pos x1", j);
                near(r[j + half], u[j + half] * cos(ang) + u[j] * sin(ang), "long pos x2", j);
            }
    free(x), free(y), free(a), free(b), free(z), free(z0), free(w), free(w0);
}

int main(void) {
    tu_seed();
    const nv_backend *bs[2] = {nv_backend_cpu_f64(), nv_backend_cpu()};
    const double tols[2] = {1e-14, 1e-6};
    for (int k = 0; k < 2; k++) {
        B = bs[k], TOL = tols[k];
        test_literals();
        test_formula(10000);
        test_formula(160000);
        test_properties(10000);
        test_properties(160000);
    }
    return tu_finish("test_cpu_rope");
}
