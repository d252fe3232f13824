#include <cblas.h>

/// Eight floats, imported into Swift as SIMD8<Float>.
typedef float newtonps_float8 __attribute__((ext_vector_type(8)));

/// Correctly rounded square roots of eight floats in one instruction.
/// Swift's Float.squareRoot() goes through C's sqrtf, whose errno check on
/// Linux keeps every loop around it scalar.
static inline newtonps_float8 newtonps_sqrt8(newtonps_float8 x) { return __builtin_elementwise_sqrt(x); }
