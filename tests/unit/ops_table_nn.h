/* tests/unit/ops_table_nn.h — the rows of the op table (tests/unit/test_ops.c) for the nn
 * families of lib/nn/ops/: gemm, softmax, norm, act, elem, conv, attention, embed, xent,
 * lora. Included once by test_ops.c after its harness (struct op_entry, gen_input, the
 * shared WHY_* reasons, conv_ref_plain, gnorm_ref); the functions here follow the recipe
 * at the top of test_ops.c: sh_ shapes, fw_/bw_ run on ctx buffers (device memory on
 * CUDA: only ops and lvd_buf_* touch them; CPU-only entries may build small index arrays
 * on the host), rf_ oracles in double on host copies.
 *
 * Integer inputs (token ids, targets, positions) are not table tensors: they are derived
 * from the case (id n = (a·n + b) mod V), so every context sees the same ones.
 * Dimension letters: M/N/K GEMM sizes, N rows, IC/OC features, C channels, B batch,
 * G groups, HW pixels, Sq/Sk lengths, H heads, D head dim, V vocabulary, R LoRA rank. */

/* shared reasons of this file */
#define WHY_ELEM0 "elementwise, same code on every context (ranges split over threads): bit-identical"
#define WHY_ROWS0 "no fast path: rows/groups split over threads, each computed whole: bit-identical"
#define WHY_SPLIT "lvd_gemm cuts products >= 2^21 MACs into 16-row/column blocks over the pool: " \
	"each element is the same K-long fp32 dot product, but OpenBLAS may pick another " \
	"micro-kernel for a block (another summation order: measured 4.8e-6 on |C| <= 16 at 3 " \
	"threads, 3e-7 of the scale)"
#define WHY_CUBLAS "cuBLASLt fp32 (no TF32) sums K products in its own order: ~K·6e-8 relative"
#define WHY_CUDA_ELEM "CUDA libdevice expf/erff/tanhf within 2 ulp of glibc's: ~2.4e-7 relative"
#define WHY_CUDA_NORM "CUDA reductions in double in another order, the same fp32 affine: a few ulp"
#define WHY_FD_SMOOTH "smooth: h = 1e-2 gives truncation O(h²·f''') ~ 1e-4 plus fp32 rounding of " \
	"the forward / h ~ 1e-5 relative to the gradient scale"
#define WHY_FD_NOTHING "forward only"

/* A device-agnostic copy: out (zeroed by the table) += src. */
static void copy_in(struct lvd_ctx *ctx, float *out, const float *src, size_t n)
{
	lvd_add(ctx, out, src, n);
}

/* bf16 round to nearest even of a float, in the oracle */
static float bf16_round(float x)
{
	uint32_t u;
	memcpy(&u, &x, 4);
	if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu)) {
		u |= 0x400000u;
	} else {
		u += 0x7fffu + ((u >> 16) & 1u);
	}
	u &= 0xffff0000u;
	memcpy(&x, &u, 4);
	return x;
}

/* ---- gemm: i = {M, N, K, transA, transB}, f = {alpha, beta}; in: A, B, C0; out: C ---- */
#define GM_DIMS(c) int M = (c)->i[0], N = (c)->i[1], K = (c)->i[2], TA = (c)->i[3], TB = (c)->i[4]; \
	int lda = TA ? M : K, ldb = TB ? K : N; float alpha = (float)(c)->f[0], beta = (float)(c)->f[1]; \
	(void)lda; (void)ldb; (void)alpha; (void)beta
static void sh_gemm(const struct op_case *c, struct op_io *io)
{
	GM_DIMS(c);
	io->n_in = 3;
	io->in_n[0] = (size_t)M * K;
	io->in_n[1] = (size_t)K * N;
	io->in_n[2] = (size_t)M * N;
	io->n_out = io->n_loss = 1;
	io->out_n[0] = (size_t)M * N;
}
static void fw_gemm(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	GM_DIMS(c);
	copy_in(ctx, out[0], in[2], (size_t)M * N);
	lvd_gemm(ctx, TA, TB, M, N, K, alpha, in[0], lda, in[1], ldb, beta, out[0], N);
}
static void gemm_ref(const struct op_case *c, const float *A, const float *B, const float *C0, double *C, int bf)
{
	GM_DIMS(c);
	for (int m = 0; m < M; m++)
		for (int n = 0; n < N; n++) {
			double s = 0;
			for (int k = 0; k < K; k++) {
				float a = TA ? A[(size_t)k * lda + m] : A[(size_t)m * lda + k];
				float b = TB ? B[(size_t)n * ldb + k] : B[(size_t)k * ldb + n];
				if (bf)
					a = bf16_round(a), b = bf16_round(b);
				s += (double)a * b;
			}
			C[(size_t)m * N + n] = alpha * s + (beta != 0 ? (double)beta * C0[(size_t)m * N + n] : 0);
		}
}
static void rf_gemm(const struct op_case *c, const float *const *in, double *const *out)
{
	gemm_ref(c, in[0], in[1], in[2], out[0], 0);
}
static const struct op_case C_gemm[] = {
	{"5x7x3 NN a1 b0", {5, 7, 3, 0, 0}, {1, 0}},
	{"6x5x9 TN a0.5 b1", {6, 5, 9, 1, 0}, {0.5, 1}},
	{"4x9x7 NT a-2 b0.25", {4, 9, 7, 0, 1}, {-2, 0.25}},
	{"7x3x5 TT a1 b-1", {7, 3, 5, 1, 1}, {1, -1}},
	{"1x33x17 NN (row vector)", {1, 33, 17, 0, 0}, {1, 0}},
	{"130x128x128 NN (pool split by rows)", {130, 128, 128, 0, 0}, {1, 1}},
	{"64x160x256 TN (split by columns)", {64, 160, 256, 1, 0}, {0.75, 0}},
	{0},
};

/* gemm_bf16: the same with A and B rounded to bf16 on the context (lvd_f32_to_bf16) */
static void fw_gemm_bf16(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	GM_DIMS(c);
	size_t na = (size_t)M * K, nb = (size_t)K * N;
	uint16_t *a = lvd_buf_alloc(ctx, 2 * na), *b = lvd_buf_alloc(ctx, 2 * nb);
	REQUIRE(a && b);
	lvd_f32_to_bf16(ctx, a, in[0], na);
	lvd_f32_to_bf16(ctx, b, in[1], nb);
	copy_in(ctx, out[0], in[2], (size_t)M * N);
	lvd_gemm_bf16(ctx, TA, TB, M, N, K, alpha, a, lda, b, ldb, beta, out[0], N);
	lvd_ctx_sync(ctx);
	lvd_buf_free(ctx, a);
	lvd_buf_free(ctx, b);
}
static void rf_gemm_bf16(const struct op_case *c, const float *const *in, double *const *out)
{
	gemm_ref(c, in[0], in[1], in[2], out[0], 1);
}

/* ---- linear: i = {N, IC, OC}; in: x [N,IC], w [OC,IC], b [OC]; out: y [N,OC] ---- */
static void sh_linear(const struct op_case *c, struct op_io *io)
{
	int N = c->i[0], IC = c->i[1], OC = c->i[2];
	io->n_in = 3;
	io->in_n[0] = (size_t)N * IC;
	io->in_n[1] = (size_t)OC * IC;
	io->in_n[2] = (size_t)OC;
	io->grad[0] = io->grad[1] = io->grad[2] = 1;
	io->n_out = io->n_loss = 1;
	io->out_n[0] = (size_t)N * OC;
}
static void fw_linear(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	lvd_linear_fwd(ctx, out[0], in[0], in[1], in[2], c->i[0], c->i[1], c->i[2]);
}
static void bw_linear(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out,
		      float *const *dout, float *const *din)
{
	(void)out;
	lvd_linear_bwd(ctx, din[0], din[1], din[2], dout[0], in[0], in[1], c->i[0], c->i[1], c->i[2]);
}
static void rf_linear(const struct op_case *c, const float *const *in, double *const *out)
{
	int N = c->i[0], IC = c->i[1], OC = c->i[2];
	for (int n = 0; n < N; n++)
		for (int o = 0; o < OC; o++) {
			double s = in[2][o];
			for (int k = 0; k < IC; k++)
				s += (double)in[0][(size_t)n * IC + k] * in[1][(size_t)o * IC + k];
			out[0][(size_t)n * OC + o] = s;
		}
}
static const struct op_case C_linear[] = {
	{"N5 IC7 OC3", {5, 7, 3}, {0}},
	{"N1 IC16 OC33", {1, 16, 33}, {0}},
	{"N256 IC64 OC128 (pool split)", {256, 64, 128}, {0}},
	{0},
};

/* ---- softmax: i = {N, M}; in: x [N,M] in [-4, 4); out: y [N,M] ---- */
static void sh_softmax(const struct op_case *c, struct op_io *io)
{
	io->n_in = io->n_out = io->n_loss = 1;
	io->in_n[0] = io->out_n[0] = (size_t)c->i[0] * c->i[1];
	io->grad[0] = 1;
	io->lo[0] = -4, io->hi[0] = 4;
}
static void fw_softmax(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	lvd_softmax_fwd(ctx, out[0], in[0], c->i[0], c->i[1]);
}
static void bw_softmax(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out,
		       float *const *dout, float *const *din)
{
	(void)in;
	if (din[0])
		lvd_softmax_bwd(ctx, din[0], dout[0], out[0], c->i[0], c->i[1]);
}
static void rf_softmax(const struct op_case *c, const float *const *in, double *const *out)
{
	int N = c->i[0], M = c->i[1];
	for (int n = 0; n < N; n++) {
		const float *x = in[0] + (size_t)n * M;
		double mx = -INFINITY, s = 0;
		for (int j = 0; j < M; j++)
			mx = fmax(mx, x[j]);
		for (int j = 0; j < M; j++)
			s += exp(x[j] - mx);
		for (int j = 0; j < M; j++)
			out[0][(size_t)n * M + j] = exp(x[j] - mx) / s;
	}
}
static const struct op_case C_softmax[] = {
	{"N3 M7", {3, 7}, {0}},
	{"N2 M77 (vector + tail)", {2, 77}, {0}},
	{"N5 M1", {5, 1}, {0}},
	{"N4 M1029", {4, 1029}, {0}},
	{0},
};

/* ---- layernorm: i = {N, C}, f = {eps}; in: x, w, b; out: y, mean [N], rstd [N] ---- */
static void sh_lnorm(const struct op_case *c, struct op_io *io)
{
	int N = c->i[0], C = c->i[1];
	io->n_in = 3;
	io->in_n[0] = (size_t)N * C;
	io->in_n[1] = io->in_n[2] = (size_t)C;
	io->grad[0] = io->grad[1] = io->grad[2] = 1;
	io->lo[1] = 0.5f, io->hi[1] = 1.5f;
	io->n_out = 3;
	io->n_loss = 1;
	io->out_n[0] = (size_t)N * C;
	io->out_n[1] = io->out_n[2] = (size_t)N;
}
static void fw_lnorm(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	lvd_layernorm_fwd(ctx, out[0], out[1], out[2], in[0], in[1], in[2], c->i[0], c->i[1], (float)c->f[0]);
}
static void bw_lnorm(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out,
		     float *const *dout, float *const *din)
{
	lvd_layernorm_bwd(ctx, din[0], din[1], din[2], dout[0], in[0], in[1], out[1], out[2], c->i[0], c->i[1]);
}
/* LayerNorm of rows = GroupNorm with B = N, C = 1 channel of C pixels, then the row affine */
static void rf_lnorm(const struct op_case *c, const float *const *in, double *const *out)
{
	int N = c->i[0], C = c->i[1];
	gnorm_ref(in[0], NULL, NULL, N, 1, C, 1, (float)c->f[0], out[0], out[1], out[2]);
	for (int n = 0; n < N; n++)
		for (int j = 0; j < C; j++)
			out[0][(size_t)n * C + j] = out[0][(size_t)n * C + j] * in[1][j] + in[2][j];
}
static const struct op_case C_lnorm[] = {
	{"N3 C17", {3, 17}, {1e-5}},
	{"N1 C64 eps1e-6", {1, 64}, {1e-6}},
	{"N7 C5", {7, 5}, {1e-5}},
	{0},
};

/* ---- rmsnorm: i = {N, C}, f = {eps}; in: x, w; out: y, rstd [N] ---- */
static void sh_rms(const struct op_case *c, struct op_io *io)
{
	int N = c->i[0], C = c->i[1];
	io->n_in = 2;
	io->in_n[0] = (size_t)N * C;
	io->in_n[1] = (size_t)C;
	io->grad[0] = io->grad[1] = 1;
	io->lo[1] = 0.5f, io->hi[1] = 1.5f;
	io->n_out = 2;
	io->n_loss = 1;
	io->out_n[0] = (size_t)N * C;
	io->out_n[1] = (size_t)N;
}
static void fw_rms(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	lvd_rmsnorm_fwd(ctx, out[0], out[1], in[0], in[1], c->i[0], c->i[1], (float)c->f[0]);
}
static void bw_rms(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out,
		   float *const *dout, float *const *din)
{
	lvd_rmsnorm_bwd(ctx, din[0], din[1], dout[0], in[0], in[1], out[1], c->i[0], c->i[1]);
}
static void rf_rms(const struct op_case *c, const float *const *in, double *const *out)
{
	int N = c->i[0], C = c->i[1];
	for (int n = 0; n < N; n++) {
		const float *x = in[0] + (size_t)n * C;
		double ss = 0;
		for (int j = 0; j < C; j++)
			ss += (double)x[j] * x[j];
		double r = 1 / sqrt(ss / C + (float)c->f[0]);
		out[1][n] = r;
		for (int j = 0; j < C; j++)
			out[0][(size_t)n * C + j] = in[1][j] * (x[j] * r);
	}
}

/* ---- groupnorm: i = {B, C, HW, G}, f = {eps} (sh_gnorm, gnorm_ref of test_ops.c) ---- */
static void fw_gnorm(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	lvd_groupnorm_fwd(ctx, out[0], out[1], out[2], in[0], in[1], in[2], c->i[0], c->i[1], c->i[2], c->i[3],
			  (float)c->f[0], 0);
}
static void bw_gnorm(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out,
		     float *const *dout, float *const *din)
{
	lvd_groupnorm_bwd(ctx, din[0], din[1], din[2], dout[0], in[0], in[1], out[1], out[2], c->i[0], c->i[1],
			  c->i[2], c->i[3]);
}
static void rf_gnorm(const struct op_case *c, const float *const *in, double *const *out)
{
	gnorm_ref(in[0], in[1], in[2], c->i[0], c->i[1], c->i[2], c->i[3], (float)c->f[0], out[0], out[1], out[2]);
}
static void fw_gnorm_silu(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	lvd_groupnorm_fwd(ctx, out[0], out[1], out[2], in[0], in[1], in[2], c->i[0], c->i[1], c->i[2], c->i[3],
			  (float)c->f[0], 1);
}
static void rf_gnorm_silu(const struct op_case *c, const float *const *in, double *const *out)
{
	rf_gnorm(c, in, out);
	size_t n = (size_t)c->i[0] * c->i[1] * c->i[2];
	for (size_t j = 0; j < n; j++)
		out[0][j] = out[0][j] / (1 + exp(-out[0][j]));
}
static const struct op_case C_gnorm[] = {
	{"B2 C6 HW5 G3", {2, 6, 5, 3}, {1e-5}},
	{"B1 C4 HW9 G1", {1, 4, 9, 1}, {1e-6}},
	{"B2 C4 HW3 G4", {2, 4, 3, 4}, {1e-5}},
	{"B1 C8 HW300 G2 (AVX2 sums + tails)", {1, 8, 300, 2}, {1e-5}},
	{0},
};

/* ---- act: i = {n, kind}; in: x [n] (a [n], b [n] for swiglu); out: y [n] ---- */
static void sh_act1(const struct op_case *c, struct op_io *io)
{
	io->n_in = io->n_out = io->n_loss = 1;
	io->in_n[0] = io->out_n[0] = (size_t)c->i[0];
	io->grad[0] = 1;
	io->lo[0] = -5, io->hi[0] = 5;
}
static double gelu_d(double x, int kind)
{
	if (kind == LVD_GELU_EXACT)
		return 0.5 * x * (1 + erf(x / sqrt(2.0)));
	if (kind == LVD_GELU_TANH)
		return 0.5 * x * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
	return x / (1 + exp(-1.702 * x));
}
static void fw_gelu(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	lvd_gelu_fwd(ctx, out[0], in[0], (size_t)c->i[0], (enum lvd_gelu_kind)c->i[1]);
}
static void bw_gelu(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out,
		    float *const *dout, float *const *din)
{
	(void)out;
	if (din[0])
		lvd_gelu_bwd(ctx, din[0], dout[0], in[0], (size_t)c->i[0], (enum lvd_gelu_kind)c->i[1]);
}
static void rf_gelu(const struct op_case *c, const float *const *in, double *const *out)
{
	for (int j = 0; j < c->i[0]; j++)
		out[0][j] = gelu_d(in[0][j], c->i[1]);
}
static const struct op_case C_gelu_exact[] = {{"n300", {300, LVD_GELU_EXACT}, {0}}, {"n5", {5, LVD_GELU_EXACT}, {0}}, {0}};
static const struct op_case C_gelu_tanh[] = {{"n300", {300, LVD_GELU_TANH}, {0}}, {"n5", {5, LVD_GELU_TANH}, {0}}, {0}};
static const struct op_case C_gelu_quick[] = {{"n300", {300, LVD_GELU_QUICK}, {0}}, {"n5", {5, LVD_GELU_QUICK}, {0}}, {0}};

static void fw_silu(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	lvd_silu_fwd(ctx, out[0], in[0], (size_t)c->i[0]);
}
static void bw_silu(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out,
		    float *const *dout, float *const *din)
{
	(void)out;
	if (din[0])
		lvd_silu_bwd(ctx, din[0], dout[0], in[0], (size_t)c->i[0]);
}
static void rf_silu(const struct op_case *c, const float *const *in, double *const *out)
{
	for (int j = 0; j < c->i[0]; j++)
		out[0][j] = in[0][j] / (1 + exp(-(double)in[0][j]));
}
static const struct op_case C_act[] = {{"n300", {300}, {0}}, {"n5", {5}, {0}}, {0}};

static void sh_swiglu(const struct op_case *c, struct op_io *io)
{
	sh_act1(c, io);
	io->n_in = 2;
	io->in_n[1] = io->in_n[0];
	io->grad[1] = 1;
	io->lo[1] = -2, io->hi[1] = 2;
}
static void fw_swiglu(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	lvd_swiglu_fwd(ctx, out[0], in[0], in[1], (size_t)c->i[0]);
}
static void bw_swiglu(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out,
		      float *const *dout, float *const *din)
{
	(void)out;
	lvd_swiglu_bwd(ctx, din[0], din[1], dout[0], in[0], in[1], (size_t)c->i[0]);
}
static void rf_swiglu(const struct op_case *c, const float *const *in, double *const *out)
{
	for (int j = 0; j < c->i[0]; j++)
		out[0][j] = in[0][j] / (1 + exp(-(double)in[0][j])) * in[1][j];
}

/* geglu: i = {N, F}; in: [N, 2F] = [a | g]; out: [N, F] */
static void sh_geglu(const struct op_case *c, struct op_io *io)
{
	io->n_in = io->n_out = io->n_loss = 1;
	io->in_n[0] = (size_t)c->i[0] * 2 * c->i[1];
	io->out_n[0] = (size_t)c->i[0] * c->i[1];
	io->grad[0] = 1;
	io->lo[0] = -4, io->hi[0] = 4;
}
static void fw_geglu(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	lvd_geglu_fwd(ctx, out[0], in[0], c->i[0], c->i[1]);
}
static void bw_geglu(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out,
		     float *const *dout, float *const *din)
{
	(void)out;
	if (din[0])
		lvd_geglu_bwd(ctx, din[0], dout[0], in[0], c->i[0], c->i[1]);
}
static void rf_geglu(const struct op_case *c, const float *const *in, double *const *out)
{
	int N = c->i[0], F = c->i[1];
	for (int n = 0; n < N; n++)
		for (int f = 0; f < F; f++) {
			const float *r = in[0] + (size_t)n * 2 * F;
			out[0][(size_t)n * F + f] = r[f] * gelu_d(r[F + f], LVD_GELU_EXACT);
		}
}
static const struct op_case C_geglu[] = {{"N3 F37 (4 vectors + tail)", {3, 37}, {0}}, {"N2 F5", {2, 5}, {0}}, {0}};

/* ---- elem: i = {n or N, C}, f = {a}; in: y0, x (or b); out: y ---- */
static void sh_elem2(const struct op_case *c, struct op_io *io)
{
	io->n_in = 2;
	io->n_out = io->n_loss = 1;
	io->in_n[0] = io->in_n[1] = io->out_n[0] = (size_t)c->i[0];
}
static void fw_add(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	copy_in(ctx, out[0], in[0], (size_t)c->i[0]);
	lvd_add(ctx, out[0], in[1], (size_t)c->i[0]);
}
static void rf_add(const struct op_case *c, const float *const *in, double *const *out)
{
	for (int j = 0; j < c->i[0]; j++)
		out[0][j] = (double)in[0][j] + in[1][j];
}
static void fw_axpy(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	copy_in(ctx, out[0], in[0], (size_t)c->i[0]);
	lvd_axpy(ctx, out[0], (float)c->f[0], in[1], (size_t)c->i[0]);
}
static void rf_axpy(const struct op_case *c, const float *const *in, double *const *out)
{
	for (int j = 0; j < c->i[0]; j++)
		out[0][j] = (double)in[0][j] + (float)c->f[0] * (double)in[1][j];
}
static void sh_scale(const struct op_case *c, struct op_io *io)
{
	sh_elem2(c, io);
	io->n_in = 1;
}
static void fw_scale(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	copy_in(ctx, out[0], in[0], (size_t)c->i[0]);
	lvd_scale(ctx, out[0], (float)c->f[0], (size_t)c->i[0]);
}
static void rf_scale(const struct op_case *c, const float *const *in, double *const *out)
{
	for (int j = 0; j < c->i[0]; j++)
		out[0][j] = (float)c->f[0] * (double)in[0][j];
}
/* 2^20 + 3 values: over the pool's split threshold, ragged */
static const struct op_case C_elem[] = {{"n1048579 a-0.75", {1048579}, {-0.75}}, {"n7 a3", {7}, {3}}, {0}};

/* bias: i = {N, C} (rows) or {C, HW} (channels); in: y0 [i0·i1], b [C]; out: y */
static void sh_bias(const struct op_case *c, struct op_io *io)
{
	io->n_in = 2;
	io->n_out = io->n_loss = 1;
	io->in_n[0] = io->out_n[0] = (size_t)c->i[0] * c->i[1];
	io->in_n[1] = (size_t)c->i[2];
}
static void fw_bias_rows(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	copy_in(ctx, out[0], in[0], (size_t)c->i[0] * c->i[1]);
	lvd_add_bias_rows(ctx, out[0], in[1], c->i[0], c->i[1]);
}
static void rf_bias_rows(const struct op_case *c, const float *const *in, double *const *out)
{
	for (int n = 0; n < c->i[0]; n++)
		for (int j = 0; j < c->i[1]; j++)
			out[0][(size_t)n * c->i[1] + j] = (double)in[0][(size_t)n * c->i[1] + j] + in[1][j];
}
static void fw_bias_chan(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	copy_in(ctx, out[0], in[0], (size_t)c->i[0] * c->i[1]);
	lvd_add_bias_chan(ctx, out[0], in[1], c->i[0], c->i[1]);
}
static void rf_bias_chan(const struct op_case *c, const float *const *in, double *const *out)
{
	for (int ch = 0; ch < c->i[0]; ch++)
		for (int p = 0; p < c->i[1]; p++)
			out[0][(size_t)ch * c->i[1] + p] = (double)in[0][(size_t)ch * c->i[1] + p] + in[1][ch];
}
static const struct op_case C_bias_rows[] = {{"N5 C7", {5, 7, 7}, {0}}, {"N300 C64", {300, 64, 64}, {0}}, {0}};
static const struct op_case C_bias_chan[] = {{"C7 HW5", {7, 5, 7}, {0}}, {"C64 HW4096", {64, 4096, 64}, {0}}, {0}};

/* bf16 round trip: out = bf16_to_f32(f32_to_bf16(x)); x spans many binades */
static void sh_bf16(const struct op_case *c, struct op_io *io)
{
	io->n_in = io->n_out = io->n_loss = 1;
	io->in_n[0] = io->out_n[0] = (size_t)c->i[0];
	io->lo[0] = -300, io->hi[0] = 300;
}
static void fw_bf16(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	size_t n = (size_t)c->i[0];
	uint16_t *h = lvd_buf_alloc(ctx, 2 * n);
	REQUIRE(h);
	lvd_f32_to_bf16(ctx, h, in[0], n);
	lvd_bf16_to_f32(ctx, out[0], h, n);
	lvd_ctx_sync(ctx);
	lvd_buf_free(ctx, h);
}
static void rf_bf16(const struct op_case *c, const float *const *in, double *const *out)
{
	for (int j = 0; j < c->i[0]; j++)
		out[0][j] = bf16_round(in[0][j]);
}
static const struct op_case C_bf16[] = {{"n4099", {4099}, {0}}, {"n3", {3}, {0}}, {0}};

/* transpose: i = {R, C}; in: x [R, C]; out: [C, R] */
static void sh_transpose(const struct op_case *c, struct op_io *io)
{
	io->n_in = io->n_out = io->n_loss = 1;
	io->in_n[0] = io->out_n[0] = (size_t)c->i[0] * c->i[1];
}
static void fw_transpose(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	lvd_transpose(ctx, out[0], in[0], c->i[0], c->i[1]);
}
static void rf_transpose(const struct op_case *c, const float *const *in, double *const *out)
{
	for (int r = 0; r < c->i[0]; r++)
		for (int j = 0; j < c->i[1]; j++)
			out[0][(size_t)j * c->i[0] + r] = in[0][(size_t)r * c->i[1] + j];
}
/* copy: the transpose's shapes and cases, out = in */
static void fw_copy(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	lvd_copy(ctx, out[0], in[0], (size_t)c->i[0] * c->i[1]);
}
static void rf_copy(const struct op_case *c, const float *const *in, double *const *out)
{
	for (size_t i = 0; i < (size_t)c->i[0] * c->i[1]; i++)
		out[0][i] = in[0][i];
}
static const struct op_case C_transpose[] = {{"3x5", {3, 5}, {0}}, {"67x129 (blocks + edges)", {67, 129}, {0}}, {0}};

/* ---- conv2d: CV_DIMS / sh_conv / conv_ref_plain of test_ops.c ---- */
static void fw_conv(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	CV_DIMS(c);
	lvd_conv2d_fwd(ctx, out[0], in[0], in[1], in[2], B, C, H, W, OC, KH, KW, S, PT, PL, PB, PR);
}
static void bw_conv(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out,
		    float *const *dout, float *const *din)
{
	CV_DIMS(c);
	(void)out;
	lvd_conv2d_bwd(ctx, din[0], din[1], din[2], dout[0], in[0], in[1], B, C, H, W, OC, KH, KW, S, PT, PL, PB, PR);
}
static void rf_conv(const struct op_case *c, const float *const *in, double *const *out)
{
	conv_ref_plain(c->i, in[0], in[1], in[2], out[0]);
}
static const struct op_case C_conv[] = {
	{"B2 C3 5x6 OC4 3x3 s1 p1", {2, 3, 5, 6, 4, 3, 3, 1, 1, 1, 1, 1}, {0}},
	{"B3 C4 4x5 OC2 1x1", {3, 4, 4, 5, 2, 1, 1, 1, 0, 0, 0, 0}, {0}},
	{"B1 C2 7x6 OC3 3x3 s2 p0011", {1, 2, 7, 6, 3, 3, 3, 2, 0, 0, 1, 1}, {0}},
	{"B2 C2 6x7 OC2 4x3 s2 p1201", {2, 2, 6, 7, 2, 4, 3, 2, 1, 2, 0, 1}, {0}},
	/* fast path: Winograd F(2×2) (< 32×32 pixels) and F(4×4), C >= 16, >= 256 pixels */
	{"B1 C16 16x17 OC5 3x3 s1 p1 (fast: Winograd F2)", {1, 16, 16, 17, 5, 3, 3, 1, 1, 1, 1, 1}, {0}},
	{"B2 C16 32x33 OC3 3x3 s1 p1 (fast: Winograd F4)", {2, 16, 32, 33, 3, 3, 3, 1, 1, 1, 1, 1}, {0}},
	{0},
};
/* explicit Winograd: i as conv, f = {m} */
static void fw_wino(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	CV_DIMS(c);
	lvd_conv2d_winograd_fwd(ctx, out[0], in[0], in[1], in[2], B, C, H, W, OC, (int)c->f[0]);
}
static const struct op_case C_wino[] = {
	{"F2 B1 C3 5x7 OC4", {1, 3, 5, 7, 4, 3, 3, 1, 1, 1, 1, 1}, {2}},
	{"F2 B2 C20 9x8 OC3", {2, 20, 9, 8, 3, 3, 3, 1, 1, 1, 1, 1}, {2}},
	{"F4 B1 C3 13x6 OC2", {1, 3, 13, 6, 2, 3, 3, 1, 1, 1, 1, 1}, {4}},
	{"F4 B1 C24 11x10 OC5", {1, 24, 11, 10, 5, 3, 3, 1, 1, 1, 1, 1}, {4}},
	{0},
};

/* ---- attention (inference, SD): i = {Sq, Sk, H, D, causal}; in: q [Sq,HD], k, v [Sk,HD];
 * out: o [Sq, HD], probs_mean [Sq, Sk] ---- */
static void sh_attn(const struct op_case *c, struct op_io *io)
{
	int Sq = c->i[0], Sk = c->i[1], HD = c->i[2] * c->i[3];
	io->n_in = 3;
	io->in_n[0] = (size_t)Sq * HD;
	io->in_n[1] = io->in_n[2] = (size_t)Sk * HD;
	io->lo[0] = -3, io->hi[0] = 3;    /* peaky softmax */
	io->n_out = 2;
	io->n_loss = 2;
	io->out_n[0] = (size_t)Sq * HD;
	io->out_n[1] = (size_t)Sq * Sk;
}
static void fw_attn(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	int Sq = c->i[0], Sk = c->i[1], H = c->i[2], D = c->i[3], HD = H * D;
	lvd_attention_fwd(ctx, out[0], out[1], in[0], HD, in[1], HD, in[2], HD, Sq, Sk, H, D,
			  (float)(1 / sqrt((double)D)), c->i[4]);
}
static void rf_attn(const struct op_case *c, const float *const *in, double *const *out)
{
	int Sq = c->i[0], Sk = c->i[1], H = c->i[2], D = c->i[3], HD = H * D, causal = c->i[4];
	double sc = (float)(1 / sqrt((double)D));
	double *p = malloc((size_t)Sk * sizeof *p);
	memset(out[1], 0, (size_t)Sq * Sk * sizeof(double));
	for (int h = 0; h < H; h++)
		for (int i = 0; i < Sq; i++) {
			double mx = -INFINITY, s = 0;
			for (int j = 0; j < Sk; j++) {
				double d = 0;
				for (int e = 0; e < D; e++)
					d += (double)in[0][(size_t)i * HD + h * D + e] * in[1][(size_t)j * HD + h * D + e];
				p[j] = causal && j > i ? -INFINITY : d * sc;
				mx = fmax(mx, p[j]);
			}
			for (int j = 0; j < Sk; j++)
				s += (p[j] = exp(p[j] - mx));
			for (int j = 0; j < Sk; j++)
				out[1][(size_t)i * Sk + j] += p[j] / s / H;
			for (int e = 0; e < D; e++) {
				double o = 0;
				for (int j = 0; j < Sk; j++)
					o += p[j] / s * in[2][(size_t)j * HD + h * D + e];
				out[0][(size_t)i * HD + h * D + e] = o;
			}
		}
	free(p);
}
static const struct op_case C_attn[] = {
	{"Sq37 Sk77 H3 D8 (cross)", {37, 77, 3, 8, 0}, {0}},
	{"Sq20 Sk20 H2 D16 causal", {20, 20, 2, 16, 1}, {0}},
	{"Sq300 Sk33 H1 D12 (blocks of 128 rows)", {300, 33, 1, 12, 0}, {0}},
	{0},
};

/* ---- embed ---- */
/* embedding: i = {N, V, C}; ids[n] = (7n + 3) mod V; in: table [V, C]; out: [N, C] */
#define EMB_ID(n, V) (((n) * 7 + 3) % (V))
static void sh_emb(const struct op_case *c, struct op_io *io)
{
	io->n_in = io->n_out = io->n_loss = 1;
	io->in_n[0] = (size_t)c->i[1] * c->i[2];
	io->out_n[0] = (size_t)c->i[0] * c->i[2];
	io->grad[0] = 1;
}
static int *emb_ids(const struct op_case *c)
{
	int *ids = malloc((size_t)c->i[0] * sizeof *ids);
	REQUIRE(ids);
	for (int n = 0; n < c->i[0]; n++)
		ids[n] = EMB_ID(n, c->i[1]);
	return ids;
}
static void fw_emb(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	int *ids = emb_ids(c);
	lvd_embedding_fwd(ctx, out[0], ids, in[0], c->i[0], c->i[2]);
	free(ids);
}
static void bw_emb(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out,
		   float *const *dout, float *const *din)
{
	(void)in, (void)out;
	if (!din[0])
		return;
	int *ids = emb_ids(c);
	lvd_embedding_bwd(ctx, din[0], dout[0], ids, c->i[0], c->i[2]);
	free(ids);
}
static void rf_emb(const struct op_case *c, const float *const *in, double *const *out)
{
	int N = c->i[0], V = c->i[1], C = c->i[2];
	for (int n = 0; n < N; n++)
		for (int j = 0; j < C; j++)
			out[0][(size_t)n * C + j] = in[0][(size_t)EMB_ID(n, V) * C + j];
}
/* N > V: ids repeat, so the backward must add (not store) */
static const struct op_case C_emb[] = {{"N11 V5 C3", {11, 5, 3}, {0}}, {"N4 V9 C16", {4, 9, 16}, {0}}, {0}};

/* patch unfold: i = {C, H, W, P}; in: img [C, H, W]; out: cols [(H/P)(W/P), C·P·P] */
static void sh_patch(const struct op_case *c, struct op_io *io)
{
	io->n_in = io->n_out = io->n_loss = 1;
	io->in_n[0] = io->out_n[0] = (size_t)c->i[0] * c->i[1] * c->i[2];
}
static void fw_patch(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	lvd_patch_unfold(ctx, out[0], in[0], c->i[0], c->i[1], c->i[2], c->i[3]);
}
static void rf_patch(const struct op_case *c, const float *const *in, double *const *out)
{
	int C = c->i[0], H = c->i[1], W = c->i[2], P = c->i[3], PW = W / P;
	for (int py = 0; py < H / P; py++)
		for (int px = 0; px < PW; px++)
			for (int ch = 0; ch < C; ch++)
				for (int ky = 0; ky < P; ky++)
					for (int kx = 0; kx < P; kx++)
						out[0][((size_t)(py * PW + px) * C + ch) * P * P + ky * P + kx] =
							in[0][((size_t)ch * H + py * P + ky) * W + px * P + kx];
}
static const struct op_case C_patch[] = {{"C3 8x12 P4", {3, 8, 12, 4}, {0}}, {"C2 14x14 P7", {2, 14, 14, 7}, {0}}, {0}};

/* rope: i = {B, T, H, D}, f = {theta}; positions pos[t] = 3t + 1; in: x [B,T,H,D]; out: rotated.
 * The backward is the inverse rotation (Rᵀ), accumulated. */
static void rope_setup(struct lvd_ctx *ctx, const struct op_case *c, int **pos, float **inv)
{
	int T = c->i[1], D = c->i[3];
	*pos = malloc((size_t)T * sizeof **pos);
	*inv = malloc((size_t)(D / 2) * sizeof **inv);
	REQUIRE(*pos && *inv);
	for (int t = 0; t < T; t++)
		(*pos)[t] = 3 * t + 1;
	lvd_rope_freqs(ctx, *inv, D, c->f[0], 0, 1, 1, 4, 8192);
}
static void sh_rope(const struct op_case *c, struct op_io *io)
{
	io->n_in = io->n_out = io->n_loss = 1;
	io->in_n[0] = io->out_n[0] = (size_t)c->i[0] * c->i[1] * c->i[2] * c->i[3];
	io->grad[0] = 1;
}
static void fw_rope(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	int *pos;
	float *inv;
	rope_setup(ctx, c, &pos, &inv);
	copy_in(ctx, out[0], in[0], (size_t)c->i[0] * c->i[1] * c->i[2] * c->i[3]);
	lvd_rope_apply(ctx, out[0], pos, inv, c->i[0], c->i[1], c->i[2], c->i[3], 0);
	free(pos), free(inv);
}
static void bw_rope(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out,
		    float *const *dout, float *const *din)
{
	(void)in, (void)out;
	if (!din[0])
		return;
	size_t n = (size_t)c->i[0] * c->i[1] * c->i[2] * c->i[3];
	int *pos;
	float *inv;
	rope_setup(ctx, c, &pos, &inv);
	float *g = malloc(n * sizeof *g);
	REQUIRE(g);
	memcpy(g, dout[0], n * sizeof *g);
	lvd_rope_apply(ctx, g, pos, inv, c->i[0], c->i[1], c->i[2], c->i[3], 1);
	lvd_add(ctx, din[0], g, n);
	free(g), free(pos), free(inv);
}
static void rf_rope(const struct op_case *c, const float *const *in, double *const *out)
{
	int B = c->i[0], T = c->i[1], H = c->i[2], D = c->i[3], half = D / 2;
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++)
			for (int h = 0; h < H; h++)
				for (int i = 0; i < half; i++) {
					double f = 1 / pow(c->f[0], 2.0 * i / D), a = (3 * t + 1) * f;
					const float *v = in[0] + (((size_t)b * T + t) * H + h) * D;
					double *o = out[0] + (((size_t)b * T + t) * H + h) * D;
					o[i] = v[i] * cos(a) - v[i + half] * sin(a);
					o[i + half] = v[i + half] * cos(a) + v[i] * sin(a);
				}
}
static const struct op_case C_rope[] = {{"B2 T5 H3 D8 theta1e4", {2, 5, 3, 8}, {10000}},
					{"B1 T13 H1 D16 theta5e5", {1, 13, 1, 16}, {500000}}, {0}};

/* timestep embedding: i = {dim, flip}, f = {t, freq_shift}; no tensor input; out [dim] */
static void sh_temb(const struct op_case *c, struct op_io *io)
{
	io->n_in = 0;
	io->n_out = io->n_loss = 1;
	io->out_n[0] = (size_t)c->i[0];
}
static void fw_temb(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	(void)in;
	lvd_timestep_embedding(ctx, out[0], (float)c->f[0], c->i[0], c->i[1], (float)c->f[1], 10000.0f);
}
static void rf_temb(const struct op_case *c, const float *const *in, double *const *out)
{
	(void)in;
	int half = c->i[0] / 2;
	for (int i = 0; i < half; i++) {
		double f = exp(-log(10000.0) * i / (half - c->f[1])), a = c->f[0] * f;
		out[0][i] = c->i[1] ? cos(a) : sin(a);
		out[0][half + i] = c->i[1] ? sin(a) : cos(a);
	}
}
static const struct op_case C_temb[] = {{"dim320 t999 flip shift0 (SD)", {320, 1}, {999, 0}},
					{"dim8 t3 shift1", {8, 0}, {3, 1}}, {0}};

/* ---- xent: i = {N, V}; targets[n] = (5n + 2) mod V, row 1 ignored (-100); in: logits [N, V];
 * out: [1] = summed loss. The backward scales by dout (the loss weight). CPU only. ---- */
static int *xent_targets(const struct op_case *c)
{
	int *t = malloc((size_t)c->i[0] * sizeof *t);
	REQUIRE(t);
	for (int n = 0; n < c->i[0]; n++)
		t[n] = n == 1 ? -100 : (5 * n + 2) % c->i[1];
	return t;
}
static void sh_xent(const struct op_case *c, struct op_io *io)
{
	io->n_in = io->n_out = io->n_loss = 1;
	io->in_n[0] = (size_t)c->i[0] * c->i[1];
	io->out_n[0] = 1;
	io->grad[0] = 1;
	io->lo[0] = -4, io->hi[0] = 4;
}
static void fw_xent(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	int *t = xent_targets(c), cnt = 0;
	out[0][0] = (float)lvd_xent_fwd(ctx, &cnt, in[0], t, c->i[0], c->i[1]);
	CHECK(cnt == c->i[0] - 1);
	free(t);
}
static void bw_xent(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out,
		    float *const *dout, float *const *din)
{
	(void)out;
	if (!din[0])
		return;
	int *t = xent_targets(c);
	lvd_xent_bwd(ctx, din[0], in[0], t, dout[0][0], c->i[0], c->i[1]);
	free(t);
}
static void rf_xent(const struct op_case *c, const float *const *in, double *const *out)
{
	int N = c->i[0], V = c->i[1], *t = xent_targets(c);
	double L = 0;
	for (int n = 0; n < N; n++) {
		if (t[n] < 0)
			continue;
		const float *x = in[0] + (size_t)n * V;
		double mx = -INFINITY, s = 0;
		for (int j = 0; j < V; j++)
			mx = fmax(mx, x[j]);
		for (int j = 0; j < V; j++)
			s += exp(x[j] - mx);
		L += mx + log(s) - x[t[n]];
	}
	out[0][0] = L;
	free(t);
}
static const struct op_case C_xent[] = {{"N4 V7", {4, 7}, {0}}, {"N3 V300", {3, 300}, {0}}, {0}};

/* ---- lora: i = {N, IC, OC, R}, f = {s}; in: xd [N,IC], A [R,IC], B [OC,R], y0 [N,OC];
 * out: y = y0 + s·(xd Aᵀ) Bᵀ, u [N,R] (saved) ---- */
static void sh_lora(const struct op_case *c, struct op_io *io)
{
	int N = c->i[0], IC = c->i[1], OC = c->i[2], R = c->i[3];
	io->n_in = 4;
	io->in_n[0] = (size_t)N * IC;
	io->in_n[1] = (size_t)R * IC;
	io->in_n[2] = (size_t)OC * R;
	io->in_n[3] = (size_t)N * OC;
	io->grad[0] = io->grad[1] = io->grad[2] = 1;
	io->n_out = 2;
	io->n_loss = 1;
	io->out_n[0] = (size_t)N * OC;
	io->out_n[1] = (size_t)N * R;
}
static void fw_lora(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	copy_in(ctx, out[0], in[3], (size_t)c->i[0] * c->i[2]);
	lvd_lora_fwd(ctx, out[0], out[1], in[0], in[1], in[2], (float)c->f[0], c->i[0], c->i[1], c->i[2], c->i[3]);
}
static void bw_lora(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out,
		    float *const *dout, float *const *din)
{
	lvd_lora_bwd(ctx, din[0], din[1], din[2], dout[0], in[0], out[1], in[1], in[2], (float)c->f[0], c->i[0],
		     c->i[1], c->i[2], c->i[3]);
}
static void rf_lora(const struct op_case *c, const float *const *in, double *const *out)
{
	int N = c->i[0], IC = c->i[1], OC = c->i[2], R = c->i[3];
	double s = (float)c->f[0];
	for (int n = 0; n < N; n++) {
		for (int r = 0; r < R; r++) {
			double u = 0;
			for (int k = 0; k < IC; k++)
				u += (double)in[0][(size_t)n * IC + k] * in[1][(size_t)r * IC + k];
			out[1][(size_t)n * R + r] = u;
		}
		for (int o = 0; o < OC; o++) {
			double y = 0;
			for (int r = 0; r < R; r++)
				y += out[1][(size_t)n * R + r] * in[2][(size_t)o * R + r];
			out[0][(size_t)n * OC + o] = in[3][(size_t)n * OC + o] + s * y;
		}
	}
}
static const struct op_case C_lora[] = {{"N5 IC7 OC6 R2 s2", {5, 7, 6, 2}, {2}},
					{"N3 IC16 OC9 R8 s0.5", {3, 16, 9, 8}, {0.5}}, {0}};

/* lora dropout: i = {n}, f = {p, seed}; in: x; out: xd. The mask comes from the counter RNG,
 * so there is no independent oracle of which entries drop: test_lora_dropout_values checks
 * that every output is 0 or x/(1 - p) and the keep rate; the table checks plain = fast,
 * FD (linear), NULL grads and the adjoint (forward and backward use the same mask). */
static void sh_drop(const struct op_case *c, struct op_io *io)
{
	io->n_in = io->n_out = io->n_loss = 1;
	io->in_n[0] = io->out_n[0] = (size_t)c->i[0];
	io->grad[0] = 1;
}
static void fw_drop(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	lvd_lora_dropout_fwd(ctx, out[0], in[0], (size_t)c->i[0], (float)c->f[0], (uint64_t)c->f[1]);
}
static void bw_drop(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out,
		    float *const *dout, float *const *din)
{
	(void)in, (void)out;
	if (din[0])
		lvd_lora_dropout_bwd(ctx, din[0], dout[0], (size_t)c->i[0], (float)c->f[0], (uint64_t)c->f[1]);
}
static const struct op_case C_drop[] = {{"n1000 p0.1", {1000}, {0.1, 42}}, {"n17 p0 (copy)", {17}, {0, 7}},
					{"n500 p0.5", {500}, {0.5, 9}}, {0}};

/* ======================================================================================
 * The rows (nn families). Fields after OP(...): oracle tol + why, fast tol + why,
 * CUDA tol + why, FD h, FD tol + why.
 * ==================================================================================== */
/* twins whose integer inputs (ids, positions, targets) this table passes as host arrays */
#define WHY_CUDA_HOSTINTS "twin in the family's .cu, checked by test_cuda_ops (cases_mllama.h), not by this " \
	"table (its integer inputs are host arrays here)"

static const struct op_entry op_table_nn[] = {
	{OP("gemm", "lvd_gemm (4 transposes, alpha, beta)", C_gemm, sh_gemm, fw_gemm, NULL, rf_gemm, 0, 1, 1),
	 1e-5, "fp32 BLAS sums of K <= 256 products of [-1,1] values vs double (~K·6e-8 relative)",
	 1e-6, WHY_SPLIT, 2e-5, WHY_CUBLAS, 0, 0, WHY_FD_NOTHING},
	{OP("gemm_bf16", "lvd_gemm_bf16 (inputs via lvd_f32_to_bf16)", C_gemm, sh_gemm, fw_gemm_bf16, NULL,
	    rf_gemm_bf16, 0, 1, 1),
	 1e-5, "bf16 products are exact in fp32; fp32 sums of K <= 256 terms vs double (oracle rounds the inputs alike)",
	 1e-6, WHY_SPLIT, 2e-5, WHY_CUBLAS, 0, 0, WHY_FD_NOTHING},
	{OP("linear", "lvd_linear_fwd/_bwd", C_linear, sh_linear, fw_linear, bw_linear, rf_linear, 0, 1, 1),
	 1e-5, "fp32 BLAS dot products of IC <= 64 terms + bias vs double",
	 1e-6, WHY_SPLIT, 2e-5, WHY_CUBLAS, 0.5, 2e-5, WHY_FD_LIN},
	{OP("softmax", "lvd_softmax_fwd/_bwd", C_softmax, sh_softmax, fw_softmax, bw_softmax, rf_softmax, 0, 1, 1),
	 1e-6, "expf (<= 1 ulp) and an fp32 row sum of M <= 1029 terms: ~1e-7 relative per probability <= 1",
	 1e-6, "fast: AVX2 polynomial exp (~1 ulp, exp_avx2.h) and vector partial sums vs expf, serial sum",
	 1e-6, "CUDA expf and a tree-order fp32 sum; backward dots in double as the CPU", 1e-2, 1e-3, WHY_FD_SMOOTH},
	{OP("layernorm", "lvd_layernorm_fwd/_bwd (mean, rstd saved)", C_lnorm, sh_lnorm, fw_lnorm, bw_lnorm, rf_lnorm,
	    0, 0, 1),
	 2e-6, "statistics in double in both; y = (x - mean)·rstd·w + b rounded in fp32 (~4 ulp of |y| <= ~6)",
	 0, WHY_ROWS0, 2e-6, WHY_CUDA_NORM, 1e-2, 2e-3, WHY_FD_NORM},
	{OP("rmsnorm", "lvd_rmsnorm_fwd/_bwd (rstd saved)", C_lnorm, sh_rms, fw_rms, bw_rms, rf_rms, 0, 0, 1),
	 2e-6, "Σx² in double; y = w·(x·rstd) rounded in fp32", 0, WHY_ROWS0, 2e-6, WHY_CUDA_NORM, 1e-2, 2e-3,
	 WHY_FD_NORM},
	{OP("groupnorm", "lvd_groupnorm_fwd (silu 0)/_bwd", C_gnorm, sh_gnorm, fw_gnorm, bw_gnorm, rf_gnorm, 0, 1, 1),
	 2e-6, "double statistics in both; y rounds (x - mean)·(w·rstd) + b in fp32 (~4 ulp of |y| <= ~5)",
	 2e-6, "fast: AVX2 sums in double lanes (another order) and fp32 affine: a few ulp",
	 2e-6, WHY_CUDA_NORM, 1e-2, 2e-3, WHY_FD_NORM},
	{OP("groupnorm_silu", "lvd_groupnorm_fwd (silu 1, forward only)", C_gnorm, sh_gnorm, fw_gnorm_silu, NULL,
	    rf_gnorm_silu, 0, 1, 1),
	 2e-6, "as groupnorm, then SiLU with expf (~1 ulp) on |y| <= ~5",
	 2e-6, "fast: AVX2 sums + SiLU through the vectorised exp (~1 ulp)", 2e-6, WHY_CUDA_NORM, 0, 0,
	 WHY_FD_NOTHING},
	{OP("gelu_exact", "lvd_gelu_fwd/_bwd (LVD_GELU_EXACT)", C_gelu_exact, sh_act1, fw_gelu, bw_gelu, rf_gelu, 0,
	    0, 1),
	 1e-6, "erff within 2 ulp, |y| <= 5", 0, WHY_ELEM0, 1e-6, WHY_CUDA_ELEM, 1e-2, 1e-3, WHY_FD_SMOOTH},
	{OP("gelu_tanh", "lvd_gelu_fwd/_bwd (LVD_GELU_TANH)", C_gelu_tanh, sh_act1, fw_gelu, bw_gelu, rf_gelu, 0, 1,
	    1),
	 1e-6, "tanhf within 2 ulp, cubic in fp32, |y| <= 5",
	 1e-6, "fast: tanh as (1 - e)/(1 + e), e = AVX2 exp(-2|u|) (~2 ulp of 1 absolute; measured 1.8e-7 of the "
	 "scale); elementwise spans over the threads: bit-identical for any count",
	 1e-6, WHY_CUDA_ELEM, 1e-2, 1e-3, WHY_FD_SMOOTH},
	{OP("gelu_quick", "lvd_gelu_fwd/_bwd (LVD_GELU_QUICK)", C_gelu_quick, sh_act1, fw_gelu, bw_gelu, rf_gelu, 0,
	    0, 1),
	 1e-6, "expf (<= 1 ulp) in x·σ(1.702x), |y| <= 5", 0, WHY_ELEM0, 1e-6, WHY_CUDA_ELEM, 1e-2, 1e-3,
	 WHY_FD_SMOOTH},
	{OP("silu", "lvd_silu_fwd/_bwd", C_act, sh_act1, fw_silu, bw_silu, rf_silu, 0, 0, 1),
	 1e-6, "expf (<= 1 ulp) in x·σ(x), |y| <= 5", 0, WHY_ELEM0, 1e-6, WHY_CUDA_ELEM, 1e-2, 1e-3, WHY_FD_SMOOTH},
	{OP("swiglu", "lvd_swiglu_fwd/_bwd", C_act, sh_swiglu, fw_swiglu, bw_swiglu, rf_swiglu, 0, 1, 1),
	 1e-6, "expf in silu(gate)·up, |y| <= 10",
	 1e-6, "fast: σ from the AVX2 exp(-|g|) (~1 ulp) and one division, FMA products (measured 1.3e-7 of the "
	 "scale); elementwise spans over the threads: bit-identical for any count",
	 1e-6, WHY_CUDA_ELEM, 1e-2, 1e-3, WHY_FD_SMOOTH},
	{OP("geglu", "lvd_geglu_fwd/_bwd", C_geglu, sh_geglu, fw_geglu, bw_geglu, rf_geglu, 0, 1, 1),
	 1e-6, "erff within 2 ulp in a·gelu(g), |y| <= 16",
	 2e-6, "fast: Φ by A&S 7.1.26 (|error| <= 1.5e-7) times |a·g| <= 16, relative to max(1, |y|)",
	 1e-6, WHY_CUDA_ELEM, 1e-2, 1e-3, WHY_FD_SMOOTH},
	{OP("add", "lvd_add", C_elem, sh_elem2, fw_add, NULL, rf_add, 0, 0, 1),
	 1e-7, "one fp32 rounding of the sum vs double", 0, WHY_ELEM0, 0, "one IEEE fp32 add: exact same result",
	 0, 0, WHY_FD_NOTHING},
	{OP("axpy", "lvd_axpy", C_elem, sh_elem2, fw_axpy, NULL, rf_axpy, 0, 0, 1),
	 2e-7, "fp32 a·x then add (2 roundings; CUDA may fuse to one FMA)", 0, WHY_ELEM0,
	 2e-7, "CUDA may contract a·x + y into one FMA: 1 rounding instead of 2", 0, 0, WHY_FD_NOTHING},
	{OP("scale", "lvd_scale", C_elem, sh_scale, fw_scale, NULL, rf_scale, 0, 0, 1),
	 1e-7, "one fp32 rounding of a·y", 0, WHY_ELEM0, 0, "one IEEE fp32 multiply: exact same result", 0, 0,
	 WHY_FD_NOTHING},
	{OP("add_bias_rows", "lvd_add_bias_rows", C_bias_rows, sh_bias, fw_bias_rows, NULL, rf_bias_rows, 0, 0, 1),
	 1e-7, "one fp32 rounding of the sum", 0, WHY_ELEM0, 0, "one IEEE fp32 add: exact same result", 0, 0,
	 WHY_FD_NOTHING},
	{OP("add_bias_chan", "lvd_add_bias_chan", C_bias_chan, sh_bias, fw_bias_chan, NULL, rf_bias_chan, 0, 0, 1),
	 1e-7, "one fp32 rounding of the sum", 0, WHY_ELEM0, 0, "one IEEE fp32 add: exact same result", 0, 0,
	 WHY_FD_NOTHING},
	{OP("bf16_round_trip", "lvd_f32_to_bf16 + lvd_bf16_to_f32", C_bf16, sh_bf16, fw_bf16, NULL, rf_bf16, 0, 0, 1),
	 0, "round to nearest even is exact integer arithmetic on the bits", 0, WHY_ELEM0, 0,
	 "the same bit arithmetic", 0, 0, WHY_FD_NOTHING},
	{OP("copy", "lvd_copy", C_transpose, sh_transpose, fw_copy, NULL, rf_copy, 0, 0, 1),
	 0, "copies", 0, WHY_SAME, 0, "a device-to-device copy", 0, 0, WHY_FD_NOTHING},
	{OP("transpose", "lvd_transpose", C_transpose, sh_transpose, fw_transpose, NULL, rf_transpose, 0, 0, 1),
	 0, "copies", 0, WHY_SAME, 0, "copies through shared-memory tiles", 0, 0, WHY_FD_NOTHING},
	{OP("conv2d", "lvd_conv2d_fwd (im2col; fast: Winograd) / lvd_conv2d_bwd", C_conv, sh_conv, fw_conv, bw_conv,
	    rf_conv, 0, 1, 0),
	 1e-5, "fp32 im2col GEMM sums of C·KH·KW <= 144 products of [-1,1] values vs double",
	 3e-5, "fast: Winograd on the C16 cases, error ~1e-6 (F2) and 2.6e-6·sqrt(C) (F4) of the output scale "
	       "(conv.h); backward is the same code (GEMM split: ~1e-7)",
	 0, WHY_NOCUDA, 0.5, 2e-5, WHY_FD_LIN},
	{OP("conv2d_fwd", "lvd_conv2d_fwd (forward alone, for its CUDA twin)", C_conv, sh_conv, fw_conv, NULL, rf_conv,
	    0, 1, 1),
	 1e-5, "fp32 im2col GEMM sums of C·KH·KW <= 144 products of [-1,1] values vs double",
	 3e-5, "fast: Winograd on the C16 cases, error ~1e-6 (F2) and 2.6e-6·sqrt(C) (F4) of the output scale "
	       "(conv.h)",
	 1e-5, "cuDNN GEMM-family algorithms in FMA math (symmetric pads) or im2col + cuBLASLt fp32 (asymmetric): "
	       "the same <= 144 fp32 products summed in another order (~K·6e-8 relative)",
	 0, 0, WHY_FD_NOTHING},
	{OP("conv2d_winograd", "lvd_conv2d_winograd_fwd (m = 2, 4)", C_wino, sh_conv, fw_wino, NULL, rf_conv, 0, 1, 0),
	 3e-5, "Winograd transforms add and subtract up to 16 scaled values per term: ~1e-6 (F2), "
	       "2.6e-6·sqrt(C) (F4) of the output scale",
	 3e-5, "fast: AVX2 transforms in another order than the baseline-ISA ones: the same bound",
	 0, WHY_NOCUDA, 0, 0, WHY_FD_NOTHING},
	{OP("attention", "lvd_attention_fwd (SD inference, probs_mean)", C_attn, sh_attn, fw_attn, NULL, rf_attn, 0, 1,
	    1),
	 1e-5, "fp32 softmax and GEMMs over Sk <= 77 / D <= 16 terms vs double (as test_nn_ops)",
	 2e-6, "fast: AVX2 exp in the softmax (~1 ulp) and the row blocks over 2-3 threads (same order)",
	 1e-5, "with probs_mean the explicit path: cuBLASLt fp32 GEMMs and CUDA expf softmax in other summation "
	       "orders over the same D <= 16 / Sk <= 77 terms (the fused kernel: test_cuda_ops)",
	 0, 0, WHY_FD_NOTHING},
	{OP("embedding", "lvd_embedding_fwd/_bwd", C_emb, sh_emb, fw_emb, bw_emb, rf_emb, 1, 0, 0),
	 0, "row copies", 0, WHY_SAME, 0, WHY_CUDA_HOSTINTS, 0.5, 2e-5, WHY_FD_LIN},
	{OP("patch_unfold", "lvd_patch_unfold", C_patch, sh_patch, fw_patch, NULL, rf_patch, 0, 0, 1),
	 0, "copies", 0, WHY_SAME, 0, "copies", 0, 0, WHY_FD_NOTHING},
	{OP("rope", "lvd_rope_freqs + lvd_rope_apply (bwd: inverse = 1)", C_rope, sh_rope, fw_rope, bw_rope, rf_rope, 1,
	    0, 0),
	 1e-5, "fp32 inv_freq and angle pos·f (pos <= 37: ~37·6e-8·|x|) and cosf/sinf vs double",
	 0, WHY_SAME, 0, WHY_CUDA_HOSTINTS, 0.5, 2e-5, WHY_FD_LIN},
	{OP("timestep_embedding", "lvd_timestep_embedding", C_temb, sh_temb, fw_temb, NULL, rf_temb, 0, 0, 1),
	 1e-4, "fp32 argument t·f up to 999: rounding ~999·6e-8 = 6e-5 in sin/cos (diffusers computes it in fp32 too)",
	 0, WHY_SAME, 0, "computed on the host by the CPU's code, then uploaded", 0, 0, WHY_FD_NOTHING},
	{OP("xent", "lvd_xent_fwd/_bwd (ignore_index -100)", C_xent, sh_xent, fw_xent, bw_xent, rf_xent, 0, 1, 0),
	 1e-6, "log-sum-exp in double in both; the summed loss is rounded to fp32 once",
	 1e-6, "fast: AVX2 polynomial exp in fp32 (~1 ulp, exp_avx2.h) summed in double vs exp in double",
	 0, WHY_CUDA_HOSTINTS, 1e-2, 1e-3, WHY_FD_SMOOTH},
	{OP("lora", "lvd_lora_fwd/_bwd (u saved)", C_lora, sh_lora, fw_lora, bw_lora, rf_lora, 0, 0, 1),
	 1e-5, "two fp32 GEMMs over IC <= 16 then R <= 8 terms vs double",
	 1e-6, WHY_SPLIT, 2e-5, "the same GEMMs on cuBLASLt fp32 (no TF32) in its own order: ~K·6e-8 relative",
	 0.5, 2e-5, "multilinear: linear in each single input element, so "
	 "central differences are exact up to fp32 rounding of the forward / h (h = 0.5)"},
	{OP("lora_dropout", "lvd_lora_dropout_fwd/_bwd", C_drop, sh_drop, fw_drop, bw_drop, NULL, 1, 0, 1),
	 0, "no oracle of the RNG mask: test_lora_dropout_values checks out ∈ {0, x/(1-p)} and the keep rate",
	 0, WHY_SAME, 0, "the same counter RNG (double) and the same fp32 products: bit-identical", 0.5, 2e-5,
	 WHY_FD_LIN},
};
#define N_OPS_NN ((int)(sizeof op_table_nn / sizeof op_table_nn[0]))

/* The dropout values the table cannot check against an oracle. */
static void test_lora_dropout_values(void)
{
	struct lvd_ctx *ctx = make_ctx(LVD_BACKEND_CPU, 1, 1);
	REQUIRE(ctx);
	enum { N = 20000 };
	float *x = host_alloc(N), *y = host_alloc(N);
	for (int j = 0; j < N; j++)
		x[j] = 1.0f + (float)(j % 13);
	const float p = 0.25f;
	lvd_lora_dropout_fwd(ctx, y, x, N, p, 1234);
	int kept = 0, bad = 0;
	for (int j = 0; j < N; j++) {
		if (y[j] == 0)
			continue;
		kept++;
		bad += y[j] != x[j] / (1 - p) && y[j] != x[j] * (1 / (1 - p));
	}
	CHECK(bad == 0);
	/* keep ~ Binomial(N, 0.75): sd = sqrt(N·0.75·0.25) ~ 61; 6 sd */
	CHECKF(fabs(kept - 0.75 * N) < 370, "kept %d of %d at p = %.2f", kept, N, p);
	lvd_ctx_destroy(ctx);
	free(x), free(y);
}
