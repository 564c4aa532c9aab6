// sanitizer.h: what the fiber engine tells ThreadSanitizer and AddressSanitizer, so that the
// sanitizer builds (make emu-tsan, make emu-asan) act as our racecheck and memcheck. Without a
// sanitizer every function here is empty.
//   TSan: each CUDA thread is a TSan fiber; switching fibers creates no ordering (no_sync), only the
//   CUDA rules do: a barrier or warp rendezvous orders what came before it in every participant
//   before what comes after it in every participant, and a launch orders host writes before the
//   kernel and the kernel's writes before the host's next reads. A shared-memory race between
//   threads of a block is then a TSan report.
//   ASan: it must know which stack is live when we switch (start/finish_switch_fiber).
#pragma once
#include <cstddef>

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define RUSCA_EMU_TSAN 1
extern "C" void __tsan_ignore_thread_begin();
extern "C" void __tsan_ignore_thread_end();
#endif
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define RUSCA_EMU_ASAN 1
#endif

namespace rusca::emu::san {

// ---- TSan ----
inline void* current_fiber() {
#ifdef RUSCA_EMU_TSAN
    return __tsan_get_current_fiber();
#else
    return nullptr;
#endif
}
inline void* create_fiber() {
#ifdef RUSCA_EMU_TSAN
    return __tsan_create_fiber(0);
#else
    return nullptr;
#endif
}
inline void switch_to(void* fiber) {
#ifdef RUSCA_EMU_TSAN
    __tsan_switch_to_fiber(fiber, __tsan_switch_to_fiber_no_sync);
#else
    (void)fiber;
#endif
}
// Everything before release(x) in this fiber happens before everything after a later acquire(x).
inline void release(void* x) {
#ifdef RUSCA_EMU_TSAN
    __tsan_release(x);
#else
    (void)x;
#endif
}
inline void acquire(void* x) {
#ifdef RUSCA_EMU_TSAN
    __tsan_acquire(x);
#else
    (void)x;
#endif
}

// The engine's own bookkeeping (block and thread states, queues, the index variables) is handed
// between fibers by the switches themselves, which TSan is told create no order: its accesses are
// not watched (the guard's scope), or every switch would be a report. Kernel code is watched.
struct EngineAccesses {
#ifdef RUSCA_EMU_TSAN
    EngineAccesses() { __tsan_ignore_thread_begin(); }
    ~EngineAccesses() { __tsan_ignore_thread_end(); }
#endif
    EngineAccesses(const EngineAccesses&) = delete;
    EngineAccesses& operator=(const EngineAccesses&) = delete;
#ifndef RUSCA_EMU_TSAN
    EngineAccesses() {}  // user-provided: a guard object is never "unused"
#endif
};

// ---- ASan: announce a stack switch, then confirm it on arrival ----
inline void start_switch(void** fake_stack_save, const void* bottom, size_t size) {
#ifdef RUSCA_EMU_ASAN
    __sanitizer_start_switch_fiber(fake_stack_save, bottom, size);
#else
    (void)fake_stack_save, (void)bottom, (void)size;
#endif
}
inline void finish_switch(void* fake_stack_save, const void** from_bottom, size_t* from_size) {
#ifdef RUSCA_EMU_ASAN
    __sanitizer_finish_switch_fiber(fake_stack_save, from_bottom, from_size);
#else
    (void)fake_stack_save, (void)from_bottom, (void)from_size;
#endif
}

// A fiber abandoned mid-kernel (a fault) leaves ASan's scope markers on its stack: clear them
// before the stack is reused.
inline void unpoison(const void* p, size_t size) {
#ifdef RUSCA_EMU_ASAN
    __asan_unpoison_memory_region(p, size);
#else
    (void)p, (void)size;
#endif
}

}  // namespace rusca::emu::san
