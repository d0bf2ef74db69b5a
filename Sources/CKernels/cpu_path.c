// Run-time choice of SIMD path (see ckernels.h).
#include "ckernels.h"

int ck_best_path(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    // The AVX-512 kernels are not written yet (no machine here could run them): AVX-512 CPUs run
    // the AVX2 path until they are, so CK_PATH_AVX512 is never returned.
    if (0 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
        __builtin_cpu_supports("avx512vbmi2")) {
        return CK_PATH_AVX512;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
        return CK_PATH_AVX2;
    }
#endif
    return CK_PATH_SCALAR;
}
