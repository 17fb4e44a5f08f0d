// attention_cudnn.cu - cuDNN's fused attention (SDPA forward and backward) through NVIDIA's
// cudnn-frontend graph API, for the packed segments of a micro-batch. The one C++-API file
// of the backend; everything else stays C-callable (common.cuh).
//
// Layout: Q, K, V are strided views of qkv [n, 3d] (row stride 3d, head stride dh), each
// declared [B, H, S, dh] with a ragged offset per segment (element offset start[s] * 3d), so
// a segment is a "sequence" of the THD layout and the padding mask (seq_len = len[s], 0 for
// the unused entries of a rounded-up B) keeps attention inside it; O and dO likewise with row
// stride d. The softmax statistics are declared [B, H, S, 1] with strides [*, 1, H, 1] and a
// ragged offset start[s] * H: that is exactly our lse [n, H] (natural log of the scaled
// scores, cuDNN's default), so the forward writes it in place and the backward reads it, and
// the hand-written kernels can consume it too. Local layers: cuDNN's diagonal band, top-left
// aligned per segment, left bound window/2 + 1 and right bound window/2 (attn_plan.h), i.e.
// |i - j| <= window/2. The backward asks for cuDNN's deterministic algorithm and drops every
// engine whose numerical notes say non-deterministic; a shape with none left is "not
// supported" and attention.cu uses the hand-written kernels (cuDNN documents no
// deterministic THD backward on sm_8x, so there it is always the hand-written kernels).
//
// Graphs are built once per key (attn_plan.h: segments and longest segment rounded up to
// powers of two) and cached; the workspace is reserved when the backend is prepared (see
// nvc_cudnn_attn_prepare), so no step allocates. Rows past every segment (pads) are not
// touched here.
//
// STATUS: compared on an H200 (2026-12-04, second run): forward and backward within 0.22 of
// tolerance of cpu-bf16 and bitwise repeatable (bench/results/gpu-h200-2026-12-04b.md). The
// chunked backward (bwd_plan) came after that run: tests/model/test_cuda_kernels.c checks it
// against the CPU on the next GPU.

#include "common.cuh"
#include "cuda_api.h"
#include "model/cuda/attn_plan.h"
#include "nv_build_config.h"

#if NV_HAVE_CUDNN_FE
#define CUDNN_FRONTEND_SKIP_JSON_LIB 1
#include <cstring> // the frontend's shim uses std::strlen without including it
#include <cudnn_frontend.h>

#include <memory>
#include <string>
#include <unordered_map>

namespace fe = cudnn_frontend;

enum { U_Q = 1, U_K, U_V, U_O, U_STATS, U_DO, U_DQ, U_DK, U_DV, U_SEQ_Q, U_SEQ_KV, U_OFF_Q,
       U_OFF_K, U_OFF_V, U_OFF_O, U_OFF_STATS, U_OFF_DO, U_OFF_DQ, U_OFF_DK, U_OFF_DV };

typedef struct attn_graph {
    std::shared_ptr<fe::graph::Graph> g; // NULL: cuDNN cannot serve this key (why says why)
    int64_t ws;
    std::string why;
} attn_graph;

// The cuDNN part of the backend's one context (see backend_cuda.cu on why it is global).
static struct {
    int ready;
    cudnnHandle_t h;
    nv_attn_cache cache;
    void *ws;           // workspace, sized at prepare by the largest graphs
    size_t ws_bytes;
    int prepared;       // the workspace was sized by prepare: it does not grow
    int64_t *off;       // device: ragged offsets [3][cap + 1] (qkv rows, d rows, H rows)
    int32_t *lens;      // device: [cap] segment lengths (0 past n_segs)
    int cap;            // segments the buffers hold
    int test_chunk;     // > 0: backward chunks of at most this many segments (tests)
    std::string why;    // why the last call could not run
} g_cd;

static const char *cudnn_hint(cudnnStatus_t s) {
    if (s == CUDNN_STATUS_NOT_INITIALIZED) return "cuDNN could not start: check that libcudnn matches the driver and the CUDA runtime";
    return "check the cuDNN installation (libcudnn.so.9 on the library path)";
}
#define CUDNN_CHECK(call)                                                                    \
    do {                                                                                     \
        cudnnStatus_t st_ = (call);                                                          \
        if (st_ != CUDNN_STATUS_SUCCESS) {                                                   \
            fprintf(stderr, "[cuDNN ERROR] %s:%d: %s: %s\n---> HINT: %s\n", __FILE__, __LINE__, \
                    #call, cudnnGetErrorString(st_), cudnn_hint(st_));                       \
            exit(EXIT_FAILURE);                                                              \
        }                                                                                    \
    } while (0)

static void cd_init(void) {
    if (g_cd.ready) return;
    CUDNN_CHECK(cudnnCreate(&g_cd.h));
    CUDNN_CHECK(cudnnSetStream(g_cd.h, nvc()->stream));
    g_cd.ready = 1;
}

// segment buffers for up to cap segments (at prepare; later only if a batch has more)
static void cd_reserve(int cap) {
    if (cap <= g_cd.cap) return;
    if (g_cd.off) { // not prepared large enough: finish queued work before freeing
        CUDA_CHECK(cudaStreamSynchronize(nvc()->stream));
        CUDA_CHECK(cudaFree(g_cd.off));
        CUDA_CHECK(cudaFree(g_cd.lens));
    }
    CUDA_CHECK(cudaMalloc(&g_cd.off, sizeof(int64_t) * 3 * ((size_t)cap + 1)));
    CUDA_CHECK(cudaMalloc(&g_cd.lens, sizeof(int32_t) * (size_t)cap));
    g_cd.cap = cap;
}

// offsets of B + 1 segment starts (past n_segs: the end of the last) in elements of each
// tensor, and the lengths (0 for unused entries). The offsets are absolute (from the start of
// the packed buffers), so a chunk of a micro-batch's segments (nvc_cudnn_attn_bwd) runs on the
// same base pointers as the whole batch.
__global__ void ragged_kernel(int64_t *off, int32_t *lens, const int32_t *start, const int32_t *len,
                              int n_segs, int B, int d, int H) {
    const int end = n_segs > 0 ? start[n_segs - 1] + len[n_segs - 1] : 0;
    for (int b = blockIdx.x * blockDim.x + threadIdx.x; b <= B; b += gridDim.x * blockDim.x) {
        const int64_t t = b < n_segs ? start[b] : end;
        off[b] = t * 3 * d;                // q, k, v (and their gradients): rows of 3d
        off[(B + 1) + b] = t * d;          // out, dout: rows of d
        off[2 * (B + 1) + b] = t * H;      // lse: rows of H
        if (b < B) lens[b] = b < n_segs ? len[b] : 0;
    }
}

typedef std::shared_ptr<fe::graph::Tensor_attributes> T;

static T ragged_off(fe::graph::Graph &g, const char *name, int uid, int B) {
    return g.tensor(fe::graph::Tensor_attributes().set_name(name).set_uid(uid)
                        .set_dim({B + 1, 1, 1, 1}).set_stride({1, 1, 1, 1})
                        .set_data_type(fe::DataType_t::INT64));
}
static T seq_len(fe::graph::Graph &g, const char *name, int uid, int B) {
    return g.tensor(fe::graph::Tensor_attributes().set_name(name).set_uid(uid)
                        .set_dim({B, 1, 1, 1}).set_stride({1, 1, 1, 1})
                        .set_data_type(fe::DataType_t::INT32));
}
// [B, H, S, dh] over rows of `row` elements
static fe::graph::Tensor_attributes &bhsd(fe::graph::Tensor_attributes &t, const nv_attn_key &k, int64_t row) {
    return t.set_dim({k.b_cap, k.H, k.s_cap, k.dh}).set_stride({k.s_cap * row, k.dh, row, 1});
}
static T input(fe::graph::Graph &g, const char *name, int uid, const nv_attn_key &k, int64_t row, T off) {
    fe::graph::Tensor_attributes a;
    a.set_name(name).set_uid(uid);
    bhsd(a, k, row).set_ragged_offset(off);
    return g.tensor(a);
}

// validate, lower, pick deterministic engines, build the plan; "" or the reason it failed
#define FE_TRY(call)                                                                         \
    do {                                                                                     \
        auto e_ = (call);                                                                    \
        if (!e_.is_good()) return std::string(#call) + ": " + e_.get_message();              \
    } while (0)
static std::string finish_graph(fe::graph::Graph &g) {
    FE_TRY(g.validate());
    FE_TRY(g.build_operation_graph(g_cd.h));
    FE_TRY(g.create_execution_plans({fe::HeurMode_t::A, fe::HeurMode_t::FALLBACK}));
    g.deselect_numeric_notes({fe::NumericalNote_t::NONDETERMINISTIC});
    FE_TRY(g.check_support(g_cd.h));
    FE_TRY(g.build_plans(g_cd.h, fe::BuildPlanPolicy_t::HEURISTICS_CHOICE));
    return std::string();
}

static attn_graph *build(const nv_attn_key &k) {
    attn_graph *ag = new attn_graph();
    auto g = std::make_shared<fe::graph::Graph>();
    g->set_io_data_type(fe::DataType_t::BFLOAT16)
        .set_intermediate_data_type(fe::DataType_t::FLOAT)
        .set_compute_data_type(fe::DataType_t::FLOAT);
    const int64_t d = (int64_t)k.H * k.dh, B = k.b_cap;
    const float scale = (float)(1.0 / sqrt((double)k.dh));
    int64_t left = 0, right = 0;
    const int band = nv_attn_band(k.window, &left, &right);
    T q = input(*g, "Q", U_Q, k, 3 * d, ragged_off(*g, "off_q", U_OFF_Q, (int)B));
    T kk = input(*g, "K", U_K, k, 3 * d, ragged_off(*g, "off_k", U_OFF_K, (int)B));
    T v = input(*g, "V", U_V, k, 3 * d, ragged_off(*g, "off_v", U_OFF_V, (int)B));
    T sq = seq_len(*g, "seq_q", U_SEQ_Q, (int)B), skv = seq_len(*g, "seq_kv", U_SEQ_KV, (int)B);
    T off_o = ragged_off(*g, "off_o", U_OFF_O, (int)B);
    T off_st = ragged_off(*g, "off_stats", U_OFF_STATS, (int)B);
    if (!k.bwd) {
        auto opt = fe::graph::SDPA_attributes().set_name("sdpa_fwd").set_generate_stats(true)
                       .set_attn_scale(scale).set_padding_mask(true).set_seq_len_q(sq).set_seq_len_kv(skv);
        if (band)
            opt.set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT)
                .set_diagonal_band_left_bound((int)left).set_diagonal_band_right_bound((int)right);
        auto [o, stats] = g->sdpa(q, kk, v, opt);
        bhsd(o->set_output(true).set_uid(U_O), k, d).set_ragged_offset(off_o);
        stats->set_output(true).set_uid(U_STATS).set_data_type(fe::DataType_t::FLOAT)
            .set_dim({B, k.H, k.s_cap, 1}).set_stride({k.s_cap * k.H, 1, k.H, 1}).set_ragged_offset(off_st);
    } else {
        T o = input(*g, "O", U_O, k, d, off_o);
        T dout = input(*g, "dO", U_DO, k, d, ragged_off(*g, "off_do", U_OFF_DO, (int)B));
        T stats = g->tensor(fe::graph::Tensor_attributes().set_name("stats").set_uid(U_STATS)
                                .set_data_type(fe::DataType_t::FLOAT).set_dim({B, k.H, k.s_cap, 1})
                                .set_stride({k.s_cap * k.H, 1, k.H, 1}).set_ragged_offset(off_st));
        auto opt = fe::graph::SDPA_backward_attributes().set_name("sdpa_bwd").set_attn_scale(scale)
                       .set_padding_mask(true).set_seq_len_q(sq).set_seq_len_kv(skv)
                       .set_max_total_seq_len_q(k.n_cap).set_max_total_seq_len_kv(k.n_cap)
                       .set_deterministic_algorithm(true);
        if (band)
            opt.set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT)
                .set_diagonal_band_left_bound((int)left).set_diagonal_band_right_bound((int)right);
        auto [dq, dk, dv] = g->sdpa_backward(q, kk, v, o, dout, stats, opt);
        bhsd(dq->set_output(true).set_uid(U_DQ), k, 3 * d).set_ragged_offset(ragged_off(*g, "off_dq", U_OFF_DQ, (int)B));
        bhsd(dk->set_output(true).set_uid(U_DK), k, 3 * d).set_ragged_offset(ragged_off(*g, "off_dk", U_OFF_DK, (int)B));
        bhsd(dv->set_output(true).set_uid(U_DV), k, 3 * d).set_ragged_offset(ragged_off(*g, "off_dv", U_OFF_DV, (int)B));
    }
    ag->why = finish_graph(*g);
    if (ag->why.empty() && !g->get_workspace_size(ag->ws).is_good()) ag->why = "no workspace size";
    if (ag->why.empty()) ag->g = g;
    return ag;
}

// the cached graph of a key, built at its first use (NULL g: cuDNN cannot serve it, why says why)
static attn_graph *graph_cached(const nv_attn_key &k) {
    cd_init();
    attn_graph *ag = (attn_graph *)nv_attn_cache_find(&g_cd.cache, &k);
    if (!ag) {
        ag = build(k);
        NVC_REQUIRE(nv_attn_cache_put(&g_cd.cache, &k, ag) == 0, "out of host memory for the cuDNN graph cache");
        if (getenv("NVWA_CUDA_VERBOSE")) {
            char s[160];
            nv_attn_key_str(&k, s, sizeof s);
            fprintf(stderr, "cudnn attention graph %s: %s (workspace %.1f MiB)\n", s,
                    ag->g ? "built" : ag->why.c_str(), ag->ws / 1048576.0);
        }
    }
    return ag;
}

// the graph of a call: NULL with g_cd.why when cuDNN cannot serve it or it needs more
// workspace than was reserved
static attn_graph *graph_for(const nv_attn_key &k) {
    attn_graph *ag = graph_cached(k);
    if (!ag->g) {
        g_cd.why = ag->why;
        return NULL;
    }
    if ((size_t)ag->ws > g_cd.ws_bytes) {
        if (!g_cd.prepared) { // never prepared (tests, benchmarks): grow now
            if (g_cd.ws) {
                CUDA_CHECK(cudaStreamSynchronize(nvc()->stream));
                CUDA_CHECK(cudaFree(g_cd.ws));
            }
            CUDA_CHECK(cudaMalloc(&g_cd.ws, (size_t)ag->ws));
            g_cd.ws_bytes = (size_t)ag->ws;
        } else {
            char s[160], m[320];
            nv_attn_key_str(&k, s, sizeof s);
            snprintf(m, sizeof m, "the graph (%s) needs %.1f MiB of workspace, %.1f MiB were "
                     "reserved when the backend was prepared (NVWA_CUDNN_WORKSPACE_MB raises the cap)",
                     s, ag->ws / 1048576.0, g_cd.ws_bytes / 1048576.0);
            g_cd.why = m;
            return NULL;
        }
    }
    return ag;
}

static nv_attn_key key_of(int bwd, const nv_attn_segs *segs, int n, int H, int dh, int window) {
    return nv_attn_key_make(bwd, segs->n_segs, segs->max_len, n, H, dh, window);
}

// segments first .. first + count - 1 of the batch as the key's B entries
static void set_ragged(const nv_attn_key &k, const nv_attn_segs *segs, int first, int count) {
    cd_reserve(k.b_cap);
    ragged_kernel<<<(k.b_cap + 256) / 256, 256, 0, nvc()->stream>>>(
        g_cd.off, g_cd.lens, segs->start + first, segs->len + first, count, k.b_cap, k.H * k.dh, k.H);
    LAUNCH_CHECK();
}

static int run(attn_graph *ag, std::unordered_map<int64_t, void *> &pack) {
    CUDNN_CHECK(cudnnSetStream(g_cd.h, nvc()->stream));
    auto e = ag->g->execute(g_cd.h, pack, g_cd.ws);
    if (!e.is_good()) {
        g_cd.why = "execute: " + e.get_message();
        return -1;
    }
    return 0;
}

int nvc_cudnn_attn_fwd(void *out, void *lse, const void *qkv, const nv_attn_segs *segs, int n,
                       int H, int dh, int window) {
    const nv_attn_key k = key_of(0, segs, n, H, dh, window);
    attn_graph *ag = graph_for(k);
    if (!ag) return -1;
    set_ragged(k, segs, 0, segs->n_segs);
    const size_t d = (size_t)H * dh, B1 = (size_t)k.b_cap + 1;
    bf16 *x = (bf16 *)qkv;
    int64_t *oq = g_cd.off, *od = g_cd.off + B1, *oh = g_cd.off + 2 * B1;
    std::unordered_map<int64_t, void *> p = {
        {U_Q, x}, {U_K, x + d}, {U_V, x + 2 * d}, {U_O, out}, {U_STATS, lse},
        {U_SEQ_Q, g_cd.lens}, {U_SEQ_KV, g_cd.lens}, {U_OFF_Q, oq}, {U_OFF_K, oq},
        {U_OFF_V, oq}, {U_OFF_O, od}, {U_OFF_STATS, oh}};
    return run(ag, p);
}

// what bwd_plan asks nv_attn_plan_chunk about, and what the answers leave behind
typedef struct {
    const nv_attn_segs *segs;
    int n, H, dh, window;
    attn_graph *ag;     // the graph that fits, and its key
    nv_attn_key key;
    int whole;          // fits(0): 1, 0, or -1 (cannot be built); 1 when not asked (forced chunks)
    std::string why;    // why the whole batch's graph does not fit or cannot be built
} chunk_ctx;

// nv_attn_plan_chunk's question: does the graph of b segments (0: the whole batch) fit?
static int chunk_fits(void *p, int b) {
    chunk_ctx *c = (chunk_ctx *)p;
    const nv_attn_key k = b ? nv_attn_key_make(1, b, c->segs->max_len, c->n, c->H, c->dh, c->window)
                            : key_of(1, c->segs, c->n, c->H, c->dh, c->window);
    int r = 1;
    if ((c->ag = graph_for(k))) c->key = k;
    else r = graph_cached(k)->g ? 0 : -1;
    if (!b) {
        c->whole = r;
        c->why = g_cd.why;
    }
    return r;
}

// The backward of a batch whose graph needs more workspace than was reserved runs in chunks
// of consecutive segments: attention never crosses a segment, so each chunk is a smaller
// problem on the same buffers (absolute ragged offsets), and cuDNN's workspace, which grows
// with segments x longest segment, is that of the chunk's graph. A micro-batch of 45
// RNAcentral-like rows (over 100 segments) needed 8 GiB as one graph (H200, 2026-12-04) and
// ran the hand-written kernel, 3x slower. The chunk is the largest power-of-two segment count
// whose graph fits, decided by the batch's shape alone (reproducible). Sets *chunk; NULL with
// g_cd.why when no chunk of 8 or more segments fits.
static attn_graph *bwd_plan(const nv_attn_segs *segs, int n, int H, int dh, int window,
                            nv_attn_key *key, int *chunk) {
    chunk_ctx c = {segs, n, H, dh, window, NULL, nv_attn_key(), 1, std::string()};
    *chunk = nv_attn_plan_chunk(segs->n_segs, g_cd.test_chunk, chunk_fits, &c);
    if (*chunk <= 0) { // say why the whole batch cannot run, and that no chunk can either
        if (c.whole == 0) g_cd.why = c.why + "; no chunk of 8 or more segments fits either";
        else if (c.whole < 0) g_cd.why = c.why;
        return NULL;
    }
    *key = c.key;
    return c.ag;
}

int nvc_cudnn_attn_bwd(void *dqkv, const void *dout, const void *qkv, const void *out,
                       const void *lse, const nv_attn_segs *segs, int n, int H, int dh, int window) {
    nv_attn_key k;
    int chunk;
    attn_graph *ag = bwd_plan(segs, n, H, dh, window, &k, &chunk);
    if (!ag) return -1;
    const size_t d = (size_t)H * dh, B1 = (size_t)k.b_cap + 1;
    bf16 *x = (bf16 *)qkv, *g = (bf16 *)dqkv;
    for (int first = 0; first < segs->n_segs; first += chunk) {
        const int count = segs->n_segs - first < chunk ? segs->n_segs - first : chunk;
        set_ragged(k, segs, first, count); // (one stream: the previous chunk has read them)
        int64_t *oq = g_cd.off, *od = g_cd.off + B1, *oh = g_cd.off + 2 * B1;
        std::unordered_map<int64_t, void *> p = {
            {U_Q, x}, {U_K, x + d}, {U_V, x + 2 * d}, {U_O, (void *)out}, {U_DO, (void *)dout},
            {U_STATS, (void *)lse}, {U_DQ, g}, {U_DK, g + d}, {U_DV, g + 2 * d},
            {U_SEQ_Q, g_cd.lens}, {U_SEQ_KV, g_cd.lens}, {U_OFF_Q, oq}, {U_OFF_K, oq},
            {U_OFF_V, oq}, {U_OFF_O, od}, {U_OFF_DO, od}, {U_OFF_STATS, oh}, {U_OFF_DQ, oq},
            {U_OFF_DK, oq}, {U_OFF_DV, oq}};
        if (run(ag, p) != 0) return -1;
    }
    return 0;
}

// Tests: backward chunks of at most max_segs segments (0: only when the workspace asks).
extern "C" void nv_cuda_cudnn_test_chunk(int max_segs) { g_cd.test_chunk = max_segs; }

const char *nvc_cudnn_attn_why(void) { return g_cd.why.c_str(); }

// The workspace is reserved once, here, so that no step allocates. cuDNN's ragged backward
// sizes it by the padded problem (segments x longest segment x heads), not by the tokens, so
// the worst case (every segment 2 tokens) would need more than the GPU has. It is sized for
// segments averaging seq_len / 32 tokens (about 32 nt at seq 1024) and capped at
// nv_cuda_cudnn_workspace_cap() (NVWA_CUDNN_WORKSPACE_MB, default 4 GiB); a batch of more or
// shorter segments whose graph needs more runs the hand-written kernels for that call (the
// choice depends on the batch alone, so runs stay reproducible).
extern "C" size_t nv_cuda_cudnn_workspace_cap(void) {
    const char *e = getenv("NVWA_CUDNN_WORKSPACE_MB");
    const long mb = e && *e ? atol(e) : 4096;
    return (size_t)(mb > 0 ? mb : 0) << 20;
}


void nvc_cudnn_attn_prepare(int max_tokens, int seq_len, int H, int dh, int local_window) {
    if (max_tokens <= 0) return;
    cd_init();
    const size_t cap = nv_cuda_cudnn_workspace_cap();
    int segs = nv_attn_plan_segments(max_tokens, seq_len);
    size_t ws = 0;
    std::string last;
    for (; segs >= 1; segs /= 2) { // the most segments whose graphs fit under the cap
        size_t need = 0;
        int built = 0;
        for (int bwd = 0; bwd < 2; bwd++)
            for (int w = 0; w < 2; w++) {
                const nv_attn_key k = nv_attn_key_make(bwd, segs, seq_len, max_tokens, H, dh, w ? local_window : 0);
                attn_graph *ag = graph_cached(k);
                if (!ag->g) { last = ag->why; continue; }
                built++;
                if ((size_t)ag->ws > need) need = (size_t)ag->ws;
            }
        if (built && need <= cap) { ws = need; break; }
        if (segs <= 8) break;
    }
    cd_reserve(nv_attn_pow2(segs > 8 ? segs : 8, 8));
    if (getenv("NVWA_CUDA_VERBOSE"))
        fprintf(stderr, "cudnn attention: workspace %.1f MiB reserved for up to %d segments of %d "
                "(cap %.0f MiB)%s%s\n", ws / 1048576.0, segs, seq_len, cap / 1048576.0,
                last.empty() ? "" : "; a graph failed: ", last.c_str());
    if (ws > g_cd.ws_bytes) {
        if (g_cd.ws) CUDA_CHECK(cudaFree(g_cd.ws));
        CUDA_CHECK(cudaMalloc(&g_cd.ws, ws));
        g_cd.ws_bytes = ws;
    }
    g_cd.prepared = 1; // no growth during steps
}

extern "C" int nv_cuda_cudnn_attention_ok(int bwd, const nv_attn_segs *segs, int n, int H, int dh,
                                          int window, const char **why) {
    nv_attn_key k;
    int chunk;
    attn_graph *ag = bwd ? bwd_plan(segs, n, H, dh, window, &k, &chunk)
                         : graph_for(key_of(bwd, segs, n, H, dh, window));
    if (why) *why = ag ? NULL : g_cd.why.c_str();
    return ag != NULL;
}

#else // built without the cudnn-frontend headers: the hand-written kernels only

int nvc_cudnn_attn_fwd(void *, void *, const void *, const nv_attn_segs *, int, int, int, int) { return -1; }
int nvc_cudnn_attn_bwd(void *, const void *, const void *, const void *, const void *,
                       const nv_attn_segs *, int, int, int, int) { return -1; }
const char *nvc_cudnn_attn_why(void) {
    return "nvwa was built without the cudnn-frontend headers (tools/install-cudnn-frontend, then "
           "meson setup --reconfigure)";
}
void nvc_cudnn_attn_prepare(int, int, int, int, int) {}
extern "C" size_t nv_cuda_cudnn_workspace_cap(void) { return 0; }
extern "C" void nv_cuda_cudnn_test_chunk(int) {}
extern "C" int nv_cuda_cudnn_attention_ok(int, const nv_attn_segs *, int, int, int, int, const char **why) {
    if (why) *why = nvc_cudnn_attn_why();
    return 0;
}

#endif
