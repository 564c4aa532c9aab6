// fiber.cpp: fiber stacks (mmap with a guard page) and fiber creation; see fiber.h.
#include "cuda/emu/fiber.h"

#include <sys/mman.h>

#include <new>

namespace rusca::emu {

FiberStacks::~FiberStacks() {
    for (char* s : stacks_)
        if (s) munmap(s - 4096, kStackBytes + 4096);
}

char* FiberStacks::bottom(int i) {
    if (size_t(i) >= stacks_.size()) stacks_.resize(i + 1, nullptr);
    if (!stacks_[i]) {
        void* m = mmap(nullptr, kStackBytes + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
        if (m == MAP_FAILED) throw std::bad_alloc();
        mprotect(m, 4096, PROT_NONE);  // stacks grow down: the guard page sits below the bottom
        stacks_[i] = static_cast<char*>(m) + 4096;
    }
    return stacks_[i];
}

fcontext_t make_fiber(char* stack_bottom, void (*entry)(boost::context::detail::transfer_t)) {
    return boost::context::detail::make_fcontext(stack_bottom + FiberStacks::kStackBytes, FiberStacks::kStackBytes,
                                                 entry);
}

}  // namespace rusca::emu
