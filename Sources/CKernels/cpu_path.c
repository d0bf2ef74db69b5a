// Run-time choice of SIMD path (see ckernels.h).
#include "ckernels.h"

#include <stdlib.h>
#include <string.h>

/// What the CPU supports, from cpuid (through the compiler's builtins).
static int cpu_path(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
        __builtin_cpu_supports("avx512vbmi2") && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
        return CK_PATH_AVX512;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
        return CK_PATH_AVX2;
    }
#endif
    return CK_PATH_SCALAR;
}

/// The cap LOSAD_KERNEL_PATH sets (scalar, avx2, avx512), or CK_PATH_AVX512 (no cap) when it is
/// unset or names no path.
static int path_cap(void) {
    const char *value = getenv("LOSAD_KERNEL_PATH");
    if (value == NULL) return CK_PATH_AVX512;
    if (strcmp(value, "scalar") == 0) return CK_PATH_SCALAR;
    if (strcmp(value, "avx2") == 0) return CK_PATH_AVX2;
    return CK_PATH_AVX512;
}

int ck_best_path(void) {
    // Read once: every caller sees the same path for the life of the process (racing first calls
    // compute the same value).
    static int best = -1;
    int path = __atomic_load_n(&best, __ATOMIC_RELAXED);
    if (path < 0) {
        int cpu = cpu_path(), cap = path_cap();
        path = cap < cpu ? cap : cpu;
        __atomic_store_n(&best, path, __ATOMIC_RELAXED);
    }
    return path;
}

int ck_cpu_path(void) { return cpu_path(); }
