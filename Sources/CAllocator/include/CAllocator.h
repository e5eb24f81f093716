/* glibc's allocator controls (malloc.h), which the Glibc Swift module does not export. */
#ifndef CALLOCATOR_H
#define CALLOCATOR_H
#include <malloc.h>
#include <stddef.h>

/* malloc_trim(pad): returns free pages of every arena to the system; 1 if any was released. */
static inline int callocator_trim(size_t pad) { return malloc_trim(pad); }

/* mallopt(M_ARENA_MAX, count): caps the number of malloc arenas; 1 on success. */
static inline int callocator_set_arena_max(int count) { return mallopt(M_ARENA_MAX, count); }
#endif
