// The CBLAS and LAPACK declarations of OpenBLAS, for their types and
// signatures only. Nothing here is linked: Kernels/OpenBLAS.swift opens the
// library at run time and resolves each symbol by name.
#include <cblas.h>
