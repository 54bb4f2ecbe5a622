// Sanitizer builds of the test binary only (CMakeLists.txt adds this file with VISLINT_SANITIZE).
//
// oneTBB, inside OpenVINO, dlopens its libtbbbind with RTLD_DEEPBIND, and the sanitizer runtime
// refuses that flag outright (google/sanitizers#611: a deep-bound library would call libc's
// allocator instead of ASan's). This definition interposes the runtime's dlopen for this binary
// and drops the flag, so the libraries load as they would without RTLD_DEEPBIND; everything else
// is passed on unchanged to the sanitizer's own dlopen.
#include <dlfcn.h>

extern "C" void* dlopen(const char* file, int mode) {
    using Dlopen = void* (*)(const char*, int);
    static const Dlopen next = reinterpret_cast<Dlopen>(dlsym(RTLD_NEXT, "dlopen"));
    return next(file, mode & ~RTLD_DEEPBIND);
}
