/* Hot-loop helpers shared by the layer kernels. */
#ifndef LT_SIMD_H
#define LT_SIMD_H

/* Eight floats: the unit the hand-blocked kernels work in. Without AVX the
 * compiler splits it into two SSE registers. */
typedef float lt_v8 __attribute__((vector_size(32)));

/* LT_HOT gives a function a second build for x86-64-v3 (AVX2 + FMA),
 * chosen at load time on CPUs that have it; the default build stays
 * baseline x86-64. Products are fused into FMAs there, which is why the
 * two builds may differ in the last bit. */
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define LT_HOT __attribute__((target_clones("arch=x86-64-v3", "default"), optimize("fp-contract=fast")))
#endif
#endif
#ifndef LT_HOT
#define LT_HOT
#endif

/* For helpers instantiated with constant sizes, so loops unroll and small
 * arrays of vectors live in registers. */
#define LT_INLINE static inline __attribute__((always_inline))
#define LT_UNROLL _Pragma("GCC unroll 8")

#endif
