/* lib/io/safetensors_internal.h — what the safetensors reader (safetensors.c) shares with
 * the writer (safetensors_write.c); not part of the public API. */
#ifndef LVD_IO_SAFETENSORS_INTERNAL_H
#define LVD_IO_SAFETENSORS_INTERNAL_H

#include "io/safetensors.h"

/* Position of dt in the Python package's Dtype enum (the writer orders tensors by it,
 * highest first, as safetensors.torch.save does); -1 for an invalid dtype. */
int lvd_st_dtype_py_rank(enum lvd_st_dtype dt);

#endif
