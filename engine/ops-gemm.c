/* ops-gemm.c */
