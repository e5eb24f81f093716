/* Everything is in include/CAllocator.h (static inline); SwiftPM needs one source file per C target. */
#include "CAllocator.h"
