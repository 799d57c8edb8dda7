/* Post-training int8 preview: how a model would fare with its weights and
 * activations in 8-bit integers, and which layers suffer.
 *
 * Weights of every linear and conv layer are quantized per output channel,
 * symmetric, to int8 [-128, 127] (PyTorch's default for weights). The
 * activations each of those layers reads are quantized per tensor, affine,
 * to uint8 [0, 255], with ranges calibrated as the smallest and largest
 * value seen on calibration images (MinMaxObserver). The network input is
 * not quantized again: image pixels are 8-bit already. Everything is
 * simulated in float (fake quantization), as torch.ao.quantization's
 * prepare/convert preview does; nothing is staged. */
#ifndef LT_PTQ_H
#define LT_PTQ_H

#include <stdint.h>

#include "core/model.h"
#include "data/dataset.h"
#include "nn/eval.h"

typedef struct lt_ptq_opts {
	const lt_dataset *calibration; /* images whose activations set the ranges */
	const lt_dataset *data;        /* images to evaluate on */
	int per_layer;                 /* also each layer quantized alone */
	int threads;                   /* 0: one per core */
	/* Progress over all evaluations; nonzero cancels (LT_ECANCEL). */
	int (*progress)(void *ud, int64_t done, int64_t total);
	void *progress_ud;
} lt_ptq_opts;

typedef struct lt_ptq_layer {
	char *name;          /* the layer */
	char *input;         /* the layer whose output it reads ("input": the
			      * network input, not quantized) */
	float lo, hi;        /* the calibrated range of that input */
	double accuracy;     /* only this layer quantized (per_layer), else NaN */
} lt_ptq_layer;

typedef struct lt_ptq_result {
	double baseline;     /* accuracy in float */
	double accuracy;     /* every layer quantized */
	int64_t images;      /* evaluated */
	int64_t calibrated;  /* calibration images */
	int n_layers;
	lt_ptq_layer *layers;
} lt_ptq_result;

/* Run the preview on m (which needs a graph and is not changed). Fills r
 * (free with lt_ptq_result_free). LT_ENOTSUP without a graph or without a
 * linear/conv layer, LT_EINVAL (empty data), LT_ECANCEL, LT_ENOMEM. */
int lt_ptq_run(lt_model *m, const lt_ptq_opts *o, lt_ptq_result *r, lt_err *err);
void lt_ptq_result_free(lt_ptq_result *r);

/* The int8 form of m (a new model sharing its other tensors): the weight of
 * every linear and conv layer quantized as above. scale and zero_point
 * (n_nodes each) receive the uint8 levels of the outputs those layers read
 * (0: none), from the calibrated ranges lo, hi (n_nodes, as
 * lt_forward_ranges gives them), for lt_eval_opts.act_scale. NULL with err
 * (LT_ENOTSUP without a graph, LT_ENOMEM). */
lt_model *lt_ptq_quantize(lt_model *m, const float *lo, const float *hi, float *scale, int32_t *zero_point,
			  lt_err *err);

#endif
