#pragma once

#include <cstdio>
#include <cstdlib>

// Invariant check: never reachable from user input. Reports file:line and aborts.
#define VISLINT_ASSERT(cond)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::fprintf(stderr, "vislint: assertion failed at %s:%d: %s\n", __FILE__, __LINE__,  \
                         #cond);                                                                   \
            std::abort();                                                                          \
        }                                                                                          \
    } while (0)
