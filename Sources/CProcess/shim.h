// Process-wide settings the command-line tool applies at start, and the
// allocator calls of the roles.
#include <malloc.h>
#include <stdio.h>

// Keep large freed buffers mapped: fresh pages cost page faults, and the
// trainers allocate and free megabyte tensors constantly.
static inline void newtonps_tune_allocator(void) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
    mallopt(M_TOP_PAD, 64 << 20);
}

// One malloc arena for the whole process. glibc otherwise gives threads that
// allocate at once arenas of their own (up to 8 per core), and each keeps
// the buffers freed in it. In a worker, where the gRPC threads and the
// computing task allocate side by side, that was a fifth of its peak
// resident set. `train` runs about 4 % slower with one arena (its two
// computing threads then share one lock), so only the worker uses it.
static inline void newtonps_use_one_arena(void) {
    mallopt(M_ARENA_MAX, 1);
}

// Returns the allocator's free pages to the system, whatever the thresholds
// above: a worker calls it after each data block, so that its memory is its
// block cache rather than every block it has parsed.
static inline void newtonps_release_free_memory(void) {
    malloc_trim(0);
}

// Line-buffered stdout, so progress lines and messages keep their order in logs.
static inline void newtonps_line_buffer_stdout(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
}
