/* train_internal.h: helpers shared by the training and evaluation files of recd_models (seeded PRNG). */
#ifndef RECD_MODELS_TRAIN_INTERNAL_H
#define RECD_MODELS_TRAIN_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "base/alloc.h"
#include "base/hash.h"

#endif
