/* lib/models/sd/schedule.c — DDPM scaled_linear noise schedule and q(x_t | x_0). */
#include <math.h>

#include "core/error.h"
#include "models/sd/sd.h"

void lvd_sd_schedule_init(struct lvd_sd_schedule *s, int T, double beta_start, double beta_end)
{
	LVD_ASSERT(T >= 2 && T <= 1000);
	s->T = T;
	/* diffusers: torch.linspace(sqrt(b0), sqrt(b1), T, dtype=float32) ** 2, then
	 * alphas_cumprod = cumprod(1 - betas) in float32. linspace in fp32 computes
	 * start + i*step for the first half and end - (T-1-i)*step for the second. */
	float a = (float)sqrt(beta_start), b = (float)sqrt(beta_end);
	float step = (b - a) / (float)(T - 1);
	int halfway = T / 2;
	float acc = 1.0f;
	for (int i = 0; i < T; i++) {
		float r = i < halfway ? a + step * (float)i : b - step * (float)(T - 1 - i);
		s->betas[i] = r * r;
		acc *= 1.0f - s->betas[i];
		s->alphas_cumprod[i] = acc;
	}
}

void lvd_sd_add_noise(const struct lvd_sd_schedule *s, float *xt, const float *x0,
		      const float *noise, size_t n, int t)
{
	LVD_ASSERT(t >= 0 && t < s->T);
	float ac = s->alphas_cumprod[t];
	float sa = sqrtf(ac), sb = sqrtf(1.0f - ac);
	for (size_t i = 0; i < n; i++)
		xt[i] = sa * x0[i] + sb * noise[i];
}
