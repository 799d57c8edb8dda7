/* Moved to core (tensors carry schemes); kept until the kernels include core/scheme.h. */
#include "core/scheme.h"
