// glibc heap statistics for JobMemory.swift (swiftc -import-objc-header).
#include <malloc.h>
