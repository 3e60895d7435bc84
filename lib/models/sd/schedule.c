/* lib/models/sd/schedule.c — DDPM scaled_linear noise schedule and q(x_t | x_0). */
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>

#include "core/error.h"
#include "models/sd/sd.h"
#include "models/sd/sd_config.h"

void lvd_sd_schedule_init(struct lvd_sd_schedule *s, int T, double beta_start, double beta_end)
{
	LVD_ASSERT(T >= 2 && T <= 1000);
	s->T = T;
	s->prediction = LVD_SD_PRED_UNKNOWN;
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

int lvd_sd_schedule_load(struct lvd_sd_schedule *s, const char *sd_path, struct lvd_error *err)
{
	char p[4096];
	struct stat st;
	snprintf(p, sizeof p, "%s/scheduler/scheduler_config.json", sd_path);
	int T = 1000, pred = LVD_SD_PRED_UNKNOWN;
	double b0 = 0.00085, b1 = 0.012;
	if (stat(sd_path, &st) == 0 && S_ISDIR(st.st_mode) && stat(p, &st) == 0) {
		int rc = sd_sched_cfg_json(p, &T, &b0, &b1, &pred, err);
		if (rc)
			return rc;
	}
	lvd_sd_schedule_init(s, T, b0, b1);
	s->prediction = pred;
	return 0;
}
